/**
 * Section 5, the registration storm: `stormEngines` simulated engines (bench/storm-engines.ts, spread over
 * `stormProcesses` processes) send registration_request at the same moment. Measured: the time until every
 * registration_reply has arrived, and until a client has seen a registration_notification for each engine
 * (registration completes with the engine's first heartbeat, so this includes up to one or two heartbeat
 * periods). Then a fresh queue_request must list every engine: none dropped.
 */
import { join } from 'node:path'
import { Client } from '../src/index.js'
import { silentLogger } from '../src/common/log.js'
import type { Sizes } from './lib/config.js'
import { repoRoot, start, startIpcontroller, startOurController, type Proc, type Scope } from './lib/processes.js'

export const STORM_CONTROLLERS = ['ours', 'ipcontroller'] as const
export type StormController = (typeof STORM_CONTROLLERS)[number]

export interface StormFigures {
  engines: number
  pingMs: number
  /** From the go signal until the last registration_reply, ms. */
  repliesMs: number
  /** From the go signal until the client has seen every engine registered, ms; null if it never did. */
  registeredMs: number | null
  okReplies: number
  /** Engines in the controller's queue_reply afterwards. */
  listed: number
  /** Engines that asked and are not listed. */
  lost: number
}

/** The storm's ceiling: past it, what has registered so far is reported. */
const CEILING_MS = 120_000

export async function measureStorm(scope: Scope, which: StormController, sizes: Sizes): Promise<StormFigures> {
  const ping = `--ping=${sizes.stormPingMs}`
  const controller = which === 'ours' ? await startOurController(scope, [ping]) : await startIpcontroller(scope, [ping])
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger, timeoutMs: 60_000 })
  scope.teardown(() => client.close())
  await client.ready

  const script = join(repoRoot, 'dist', 'bench', 'storm-engines.js')
  const per = Math.ceil(sizes.stormEngines / sizes.stormProcesses)
  const groups: Proc[] = []
  for (let left = sizes.stormEngines; left > 0; left -= per) {
    groups.push(start(scope, process.execPath, [script, controller.engineFile, String(Math.min(per, left))]))
  }
  await Promise.all(groups.map((g) => g.waitForOutput(/^connected$/m)))

  const t0 = performance.timeOrigin + performance.now()
  for (const g of groups) g.child.kill('SIGUSR1')
  let registeredMs: number | null = null
  try {
    await client.waitForEngines(sizes.stormEngines, { timeoutMs: CEILING_MS })
    registeredMs = performance.timeOrigin + performance.now() - t0
  } catch {
    // Reported as not registered; the counts below say how many did.
  }
  const done = await Promise.all(groups.map((g) => g.waitForOutput(/^replies (\d+) ok (\d+) last ([\d.]+)$/m, 10_000).catch(() => undefined)))
  const okReplies = done.reduce((sum, m) => sum + (m ? Number(m[2]) : 0), 0)
  const lastReply = Math.max(...done.map((m) => (m ? Number(m[3]) : Number.NaN)))
  const status = await client.queueStatus()
  const listed = Object.keys(status).filter((k) => /^\d+$/.test(k)).length
  return {
    engines: sizes.stormEngines,
    pingMs: sizes.stormPingMs,
    repliesMs: lastReply - t0,
    registeredMs,
    okReplies,
    listed,
    lost: sizes.stormEngines - listed,
  }
}
