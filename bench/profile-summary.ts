/**
 * Summarises V8 CPU profiles (`node --cpu-prof`, or `npm run bench -- --cpu-prof <dir>`): the functions with the
 * most self time, as a share of the samples taken while the process was not idle.
 *
 *   node dist/bench/profile-summary.js <file.cpuprofile | dir> [--top 25] [--callers <function name>]
 *
 * `--callers` shows instead where the self time of one function (a native one, say) is spent from.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { repoRoot } from './lib/processes.js'

interface ProfileNode {
  id: number
  hitCount?: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

/** Self time (µs) by function, and the busy total (everything but `(idle)`). */
export function selfTimes(profile: Profile): { byFunction: Map<string, number>; busyUs: number } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const byFunction = new Map<string, number>()
  let busyUs = 0
  profile.samples.forEach((id, i) => {
    // timeDeltas[i] is the time before sample i; the sample accounts for the time until the next one.
    const dt = profile.timeDeltas[i + 1] ?? 0
    const frame = nodes.get(id)?.callFrame
    if (!frame || frame.functionName === '(idle)') return
    busyUs += dt
    const key = label(frame)
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt)
  })
  return { byFunction, busyUs }
}

const label = (frame: ProfileNode['callFrame']): string => {
  const where = frame.url ? `${relative(repoRoot, frame.url.replace(/^file:\/\//, ''))}:${frame.lineNumber + 1}` : ''
  return `${frame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`
}

/** Self time of the function named `name`, by the function that called it. */
function callers(profile: Profile, name: string): Map<string, number> {
  const parent = new Map<number, ProfileNode>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n)
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const out = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id)
    if (node?.callFrame.functionName !== name) return
    const from = parent.get(id)
    const key = from ? label(from.callFrame) : '(root)'
    out.set(key, (out.get(key) ?? 0) + (profile.timeDeltas[i + 1] ?? 0))
  })
  return out
}

function summarise(file: string, top: number, callersOf: string | undefined): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const { byFunction, busyUs } = selfTimes(profile)
  const wallUs = profile.endTime - profile.startTime
  console.log(`\n${basename(file)}: busy ${(busyUs / 1000).toFixed(0)} ms of ${(wallUs / 1000).toFixed(0)} ms profiled`)
  const table = callersOf === undefined ? byFunction : callers(profile, callersOf)
  if (callersOf !== undefined) console.log(`self time of ${callersOf}, by caller:`)
  const rows = [...table.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
  for (const [name, us] of rows) console.log(`${((100 * us) / busyUs).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`)
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, callers: { type: 'string' } } })
for (const target of positionals) {
  const files = statSync(target).isDirectory() ? readdirSync(target).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(target, f)) : [target]
  for (const file of files.sort()) summarise(file, Number(values.top), values.callers)
}
