/** What the figures were measured on, written beside them (absolute times only mean something with this). */
import { readFileSync } from 'node:fs'
import { cpus, loadavg, release, type } from 'node:os'
import { join } from 'node:path'
import * as zmq from 'zeromq'
import { repoRoot } from './processes.js'
import { ipyparallelVersion } from './python.js'

export interface Machine {
  cpu: string
  cores: number
  node: string
  zeromqJs: string
  libzmq: string
  ipyparallel: string
  os: string
}

export function describeMachine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown'
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu
  } catch {
    // not Linux: os.cpus() has it
  }
  const zeromqJs = (JSON.parse(readFileSync(join(repoRoot, 'node_modules', 'zeromq', 'package.json'), 'utf8')) as { version: string }).version
  return {
    cpu,
    cores: cpus().length,
    node: process.version,
    zeromqJs,
    libzmq: zmq.version,
    ipyparallel: ipyparallelVersion() ?? 'not installed',
    os: `${type()} ${release()}`,
  }
}

/** The 1-minute load average: the machine is shared, so the suite notes how busy it was. */
export function load1(): number {
  return loadavg()[0] ?? Number.NaN
}
