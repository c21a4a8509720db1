import { readdirSync } from 'node:fs'
import t from 'tap'
import type { AsyncResult } from '../../src/index.js'
import { startCluster } from '../helpers/cluster.js'
import { rssKiB, waitFor } from '../helpers/processes.js'

/**
 * Issue 7, item 9: a soak at half the measured peak rate, with tasks of mixed sizes. Throughput must hold steady,
 * memory stay flat after warm-up, and no file descriptor or client handle be left behind.
 * `JSPARALLEL_SOAK_SECONDS` sets the length (default 20, for CI); `npm run soak` runs 10 minutes.
 */
const SECONDS = Number(process.env.JSPARALLEL_SOAK_SECONDS ?? 20)
const WINDOWS = 10
const TICK_MS = 50
/**
 * From this length on (`npm run soak` runs 600 s), each window after warm-up must complete within 25% of the target
 * rate. A short run on a shared machine cannot promise that of 2 s windows (another process taking the cores for a
 * second moves a window by more); what it checks is that the cluster keeps up: never more than one window's work
 * behind. At half the peak rate that fails only if the cluster loses half its speed for a whole window.
 */
const STRICT_FROM_SECONDS = 300

const rssMiB = (pid: number): number => rssKiB(pid) / 1024
const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

/** Mixed sizes: mostly a number, sometimes 10 KB of text, rarely 1 MiB of bytes. */
function argumentFor(i: number): number | string | Uint8Array {
  if (i % 100 === 99) return new Uint8Array(1 << 20).fill(i % 251)
  if (i % 10 === 9) return 'x'.repeat(10_240)
  return i
}
/** The task (and the client's check of it): a number back for each argument, so replies stay small. */
const measure = (x: unknown): number => (typeof x === 'number' ? x : typeof x === 'string' ? x.length : (x as Uint8Array).length + ((x as Uint8Array)[0] ?? 0))

t.test(`soak: ${SECONDS} s at half the peak rate, mixed task sizes`, async (t) => {
  const { client, proc, engines } = await startCluster(t, 2)
  const lview = client.loadBalancedView()

  // The peak: small tasks, all submitted at once.
  const warmUp = Array.from({ length: 500 }, (_, i) => lview.apply(measure, i))
  await Promise.all(warmUp.map((ar) => ar.get(60_000)))
  const peakStart = performance.now()
  const burst = Array.from({ length: 3000 }, (_, i) => lview.apply(measure, i))
  await Promise.all(burst.map((ar) => ar.get(120_000)))
  const peak = 3000 / ((performance.now() - peakStart) / 1000)
  const rate = peak / 2
  const clientResources = process.getActiveResourcesInfo().length
  const fdsBefore = [proc.pid, ...engines.map((e) => e.pid)].map(fds)

  const perTick = rate * (TICK_MS / 1000)
  const windowMs = (SECONDS * 1000) / WINDOWS
  const done: number[] = Array.from({ length: WINDOWS }, () => 0)
  const memory: number[] = []
  const pending: AsyncResult<number>[] = []
  let wrong = 0
  let submitted = 0
  let settled = 0
  const behind: number[] = Array.from({ length: WINDOWS }, () => 0)
  let owed = 0
  const start = performance.now()
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - start
      if (elapsed >= SECONDS * 1000) {
        clearInterval(tick)
        resolve()
        return
      }
      for (owed += perTick; owed >= 1; owed--) {
        const i = submitted++
        const arg = argumentFor(i)
        const ar = lview.apply(measure, arg)
        pending.push(ar)
        void ar.then((v) => {
          settled++
          if (v !== measure(arg)) wrong++
          const w = Math.floor((performance.now() - start) / windowMs)
          if (w < WINDOWS) done[w] = (done[w] ?? 0) + 1
        }, () => {
          settled++
          wrong++
        })
      }
      const w = Math.floor(elapsed / windowMs)
      behind[w] = Math.max(behind[w] ?? 0, submitted - settled)
      if (memory.length < w) memory.push(rssMiB(proc.pid))
    }, TICK_MS)
  })
  await Promise.all(pending.map((ar) => ar.get(120_000)))
  memory.push(rssMiB(proc.pid))

  const perSecond = done.map((n) => n / (windowMs / 1000))
  const steady = perSecond.slice(2, -1)
  const windowWork = rate * (windowMs / 1000)
  t.comment(`soak: peak ${Math.round(peak)}/s, target ${Math.round(rate)}/s, ${submitted} tasks; per window ${perSecond.map(Math.round).join(' ')}/s; ` +
    `most tasks outstanding per window ${behind.join(' ')}; controller RSS ${memory.map((m) => m.toFixed(0)).join(' ')} MiB`)
  t.equal(wrong, 0, 'every result right')
  const mostBehind = Math.max(...behind.slice(2))
  t.ok(mostBehind <= windowWork, `the cluster kept up after warm-up: at most ${mostBehind} tasks outstanding, less than one window's ${Math.round(windowWork)}`)
  if (SECONDS >= STRICT_FROM_SECONDS) {
    t.ok(steady.every((r) => Math.abs(r - rate) <= rate * 0.25), `throughput steady within 25% of ${Math.round(rate)}/s in every window after warm-up`)
  }
  const rssSettled = memory[2] ?? NaN
  const last = memory.at(-1) ?? NaN
  t.ok(last <= rssSettled * 1.1 + 8, `controller RSS flat after warm-up (${rssSettled.toFixed(1)} -> ${last.toFixed(1)} MiB)`)
  // A descriptor opened per task would show as a count that never comes back; one still closing (a socket, a
  // thread's pipe) comes back within moments, so the count is awaited rather than sampled once.
  const pids = [proc.pid, ...engines.map((e) => e.pid)]
  await waitFor(() => pids.map(fds).every((n, i) => n === fdsBefore[i]), 'the file descriptor counts to return to where they were', 10_000).catch(() => {})
  t.same(pids.map(fds), fdsBefore, 'no file descriptor left open in controller or engines')
  t.equal(process.getActiveResourcesInfo().length, clientResources, 'no timer or handle left in the client')
})
