/** Running Debian's Python 3 with ipyparallel 7.1: is it there, which version, and running a driver script. */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { repoRoot, start, systemPython, type Scope } from './processes.js'

/** The line after which a driver script prints its JSON result, so stray output around it does not matter. */
export const RESULT_MARK = '@@RESULT@@ '

let checked: { version?: string; problem?: string } | undefined

function check(): { version?: string; problem?: string } {
  if (checked) return checked
  const r = spawnSync(systemPython, ['-c', 'import ipyparallel; print(ipyparallel.__version__)'], { encoding: 'utf8' })
  checked = r.status === 0
    ? { version: r.stdout.trim() }
    : { problem: `${systemPython} cannot import ipyparallel (install Debian's python3-ipyparallel): ${(r.stderr || String(r.error)).trim().split('\n').pop() ?? ''}` }
  return checked
}

/** Why ipyparallel cannot be used, or undefined when it can. */
export function ipyparallelProblem(): string | undefined {
  return check().problem
}

export function ipyparallelVersion(): string | undefined {
  return check().version
}

/**
 * Runs `bench/<script>` with /usr/bin/python3 and returns the JSON it printed after RESULT_MARK. Fails with the
 * script's output if it exits non-zero, prints no result, or outlives the ceiling.
 */
export async function runPythonScript(scope: Scope, script: string, args: string[], timeoutMs: number): Promise<unknown> {
  const proc = start(scope, systemPython, [join(repoRoot, 'bench', script), ...args])
  let timer: NodeJS.Timeout | undefined
  const ceiling = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs)
  })
  const ended = await Promise.race([proc.exited, ceiling])
  clearTimeout(timer)
  if (ended === 'timeout') throw new Error(`${script} did not finish within ${timeoutMs} ms; output:\n${proc.output()}`)
  if (ended.code !== 0) throw new Error(`${script} exited with ${ended.code ?? ended.signal}; output:\n${proc.output()}`)
  const line = proc.output().split('\n').find((l) => l.startsWith(RESULT_MARK))
  if (line === undefined) throw new Error(`${script} printed no result; output:\n${proc.output()}`)
  return JSON.parse(line.slice(RESULT_MARK.length))
}
