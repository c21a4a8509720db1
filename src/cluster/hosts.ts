/**
 * Which hosts a cluster's engines run on, and how many on each: hostfiles in the formats users have, `--host`
 * lists, Slurm's compressed host lists, the allocation a batch scheduler gives a job, and SCOOP's rules for `-n`
 * against them. Pure functions: files and the environment come in as arguments (only src/cli reads process.env).
 */
import { ConfigError } from '../common/errors.js'

/** A host and how many engines it takes; `slots` undefined means "as many as it has cores". */
export interface HostSlots {
  host: string
  slots: number | undefined
}

/** Where the hosts came from, for messages: a file and line, a flag, a variable. */
export interface HostSource {
  host: string
  slots: number | undefined
  /** `hosts.txt:3`, `--host`, `SLURM_JOB_NODELIST`. */
  origin: string
}

/**
 * Expands a Slurm host list: `node[01-04,07]` to node01..node04, node07 (zero padding kept); `a[1-2],b3` to
 * a1, a2, b3; several bracket groups in a name multiply (`r[1-2]n[1-2]`). `origin` names the input in errors.
 */
export function expandHostList(list: string, origin = 'host list'): string[] {
  const names: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i <= list.length; i++) {
    const c = list[i]
    if (c === '[') depth++
    else if (c === ']') {
      if (--depth < 0) throw new ConfigError(`${origin}: unbalanced ']' in '${list}'`)
    } else if (c === undefined && depth !== 0) {
      throw new ConfigError(`${origin}: unbalanced '[' in '${list}'`)
    } else if ((c === ',' && depth === 0) || c === undefined) {
      const part = list.slice(start, i).trim()
      if (part === '') throw new ConfigError(`${origin}: empty host name in '${list}'`)
      // ssh would read a name that starts with '-' as one of its options (-oProxyCommand=..., -L...).
      if (part.startsWith('-')) throw new ConfigError(`${origin}: '${part}' is not a host name (it starts with '-')`)
      names.push(...expandName(part, origin))
      start = i + 1
    }
  }
  return names
}

function expandName(name: string, origin: string): string[] {
  const open = name.indexOf('[')
  if (open < 0) {
    if (!/^[A-Za-z0-9_.:-]+$/.test(name)) throw new ConfigError(`${origin}: '${name}' is not a host name`)
    return [name]
  }
  const close = name.indexOf(']', open)
  const prefix = name.slice(0, open)
  if (prefix !== '' && !/^[A-Za-z0-9_.-]+$/.test(prefix)) throw new ConfigError(`${origin}: '${name}' is not a host name`)
  const tail = name.slice(close + 1)
  const suffixes = tail === '' ? [''] : expandName(tail, origin)
  const out: string[] = []
  for (const range of name.slice(open + 1, close).split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(range.trim())
    if (!m) throw new ConfigError(`${origin}: '${range}' in '${name}' is not a number or a range like 01-04`)
    const [from, to = from] = [m[1] as string, m[2]]
    const width = from.length
    const [a, b] = [Number(from), Number(to)]
    if (b < a) throw new ConfigError(`${origin}: range '${range}' in '${name}' runs backwards`)
    if (b - a > 100_000) throw new ConfigError(`${origin}: range '${range}' in '${name}' is too large`)
    for (let k = a; k <= b; k++) for (const suffix of suffixes) out.push(`${prefix}${String(k).padStart(width, '0')}${suffix}`)
  }
  return out
}

const positive = (text: string, what: string, origin: string): number => {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < 1) throw new ConfigError(`${origin}: ${what} must be a whole number >= 1, got '${text}'`)
  return n
}

/**
 * Parses a hostfile. Each line is one of
 * - `host` or `host N` (SCOOP: N engines there; without N, as many as it has cores),
 * - `host slots=N` (Open MPI, DTM; `max_slots=M` is accepted and ignored), or `host:N` (MPICH),
 * where `host` may be a Slurm host list (`node[01-04]`, each host getting N). `#` starts a comment; blank lines
 * are skipped. A host named on several lines adds up. `name` (the file's path) appears in errors with the line.
 */
export function parseHostfile(text: string, name = 'hostfile'): HostSource[] {
  const hosts: HostSource[] = []
  text.split(/\r?\n/).forEach((raw, index) => {
    const origin = `${name}:${index + 1}`
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') return
    const words = line.split(/\s+/)
    let first = words.shift() as string
    let slots: number | undefined
    const colon = /^(.*[^:]):(\d+)$/.exec(first)
    if (colon && !first.includes('::')) {
      first = colon[1] as string
      slots = positive(colon[2] as string, 'the count after ":"', origin)
    }
    for (const word of words) {
      const kv = /^([a-z_-]+)=(.*)$/.exec(word)
      if (kv) {
        const key = kv[1] as string
        if (key === 'slots' || key === 'cpu' || key === 'cpus') slots = positive(kv[2] as string, key, origin)
        else if (key === 'max_slots' || key === 'max-slots') positive(kv[2] as string, key, origin)
        else throw new ConfigError(`${origin}: unknown setting '${key}' (known: slots=N, max_slots=N)`)
      } else if (/^\d+$/.test(word) && slots === undefined) {
        slots = positive(word, 'the engine count', origin)
      } else {
        throw new ConfigError(`${origin}: unexpected '${word}' after the host name; a line is 'host', 'host N' or 'host slots=N'`)
      }
    }
    for (const host of expandHostList(first, origin)) hosts.push({ host, slots, origin })
  })
  if (hosts.length === 0) throw new ConfigError(`${name}: no hosts in the hostfile`)
  return hosts
}

/** `--host a a b`: each name once per engine (SCOOP), so a, a, b is a with 2 and b with 1, in first-seen order. */
export function hostsFromList(names: readonly string[], origin = '--host'): HostSource[] {
  const counts = new Map<string, number>()
  for (const name of names) for (const host of expandHostList(name, origin)) counts.set(host, (counts.get(host) ?? 0) + 1)
  return [...counts].map(([host, slots]) => ({ host, slots, origin }))
}

/** Several lines naming a host add up; order is the first mention's. `cores` fills the slots left open. */
export function mergeHosts(hosts: readonly HostSource[], cores: (host: string) => number): (HostSlots & { origin: string })[] {
  const merged = new Map<string, HostSlots & { origin: string }>()
  for (const h of hosts) {
    const slots = h.slots ?? cores(h.host)
    const seen = merged.get(h.host)
    if (seen) seen.slots = (seen.slots ?? 0) + slots
    else merged.set(h.host, { host: h.host, slots, origin: h.origin })
  }
  return [...merged.values()]
}

/**
 * SCOOP's rules for `-n` against the hosts' slots: without `n`, each host gets its slots; with fewer, hosts are
 * filled in order until `n` is reached (later hosts may get none); with more, the remainder goes round-robin, one
 * per host in turn. Hosts given no engine are left out.
 */
export function distributeEngines(hosts: readonly HostSlots[], n?: number): { host: string; engines: number }[] {
  if (hosts.length === 0) throw new ConfigError('no hosts to start engines on')
  const slots = hosts.map((h) => h.slots ?? 1)
  const total = slots.reduce((a, b) => a + b, 0)
  const want = n ?? total
  const counts = hosts.map(() => 0)
  let left = want
  for (let i = 0; i < hosts.length && left > 0; i++) {
    const take = Math.min(slots[i] as number, left)
    counts[i] = take
    left -= take
  }
  for (let i = 0; left > 0; i = (i + 1) % hosts.length, left--) counts[i] = (counts[i] as number) + 1
  return hosts.map((h, i) => ({ host: h.host, engines: counts[i] as number })).filter((h) => h.engines > 0)
}

/** Slurm's `SLURM_TASKS_PER_NODE`: `2(x3),1` is 2, 2, 2, 1. */
export function expandTasksPerNode(value: string, origin = 'SLURM_TASKS_PER_NODE'): number[] {
  return value.split(',').flatMap((part) => {
    const m = /^(\d+)(?:\(x(\d+)\))?$/.exec(part.trim())
    if (!m) throw new ConfigError(`${origin}: '${part}' is not N or N(xM) in '${value}'`)
    return Array<number>(Number(m[2] ?? 1)).fill(Number(m[1]))
  })
}

/** The hosts and engine count a batch scheduler gave this job, read from its environment. */
export interface Allocation {
  scheduler: 'slurm' | 'sge' | 'pbs' | 'lsf'
  hosts: HostSource[]
  /** The job's task or slot count where the scheduler says it (SLURM_NTASKS, NSLOTS, PBS_NP). */
  total: number | undefined
}

/** One host per line, repeated once per slot (PBS_NODEFILE, LSB_DJOB_HOSTFILE). */
function repeatedLines(text: string, origin: string): HostSource[] {
  return hostsFromList(text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== ''), origin)
}

const optionalCount = (env: Readonly<Record<string, string | undefined>>, name: string): number | undefined =>
  env[name] === undefined || env[name] === '' ? undefined : positive(env[name], name, name)

/**
 * The allocation of the batch job this process runs in, if any: Slurm (`SLURM_JOB_NODELIST`, with
 * `SLURM_TASKS_PER_NODE` and `SLURM_NTASKS`), SGE (`PE_HOSTFILE`, `NSLOTS`), PBS/Torque (`PBS_NODEFILE`, `PBS_NP`)
 * or LSF (`LSB_DJOB_HOSTFILE`, else `LSB_HOSTS`). `env` is a plain object (the CLI passes process.env);
 * `readFile` reads the files those variables name.
 */
export function allocationFromEnv(env: Readonly<Record<string, string | undefined>>, readFile: (path: string) => string): Allocation | undefined {
  const nodelist = env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST
  if (nodelist) {
    const origin = env.SLURM_JOB_NODELIST ? 'SLURM_JOB_NODELIST' : 'SLURM_NODELIST'
    const names = expandHostList(nodelist, origin)
    const perNode = env.SLURM_TASKS_PER_NODE ? expandTasksPerNode(env.SLURM_TASKS_PER_NODE) : undefined
    if (perNode && perNode.length !== names.length) {
      throw new ConfigError(`SLURM_TASKS_PER_NODE gives ${perNode.length} counts for the ${names.length} nodes of ${origin}`)
    }
    const hosts = names.map((host, i) => ({ host, slots: perNode ? perNode[i] : 1, origin }))
    return { scheduler: 'slurm', hosts, total: optionalCount(env, 'SLURM_NTASKS') }
  }
  if (env.PE_HOSTFILE) {
    const path = env.PE_HOSTFILE
    const hosts = readFile(path).split(/\r?\n/).flatMap((raw, i) => {
      const line = raw.trim()
      if (line === '') return []
      const [host, slots] = line.split(/\s+/)
      const origin = `PE_HOSTFILE ${path}:${i + 1}`
      if (host === undefined || slots === undefined) throw new ConfigError(`${origin}: expected 'host slots queue processors', got '${line}'`)
      return [{ host, slots: positive(slots, 'slots', origin), origin }]
    })
    return { scheduler: 'sge', hosts, total: optionalCount(env, 'NSLOTS') }
  }
  if (env.PBS_NODEFILE) {
    return { scheduler: 'pbs', hosts: repeatedLines(readFile(env.PBS_NODEFILE), `PBS_NODEFILE ${env.PBS_NODEFILE}`), total: optionalCount(env, 'PBS_NP') }
  }
  if (env.LSB_DJOB_HOSTFILE) {
    return { scheduler: 'lsf', hosts: repeatedLines(readFile(env.LSB_DJOB_HOSTFILE), `LSB_DJOB_HOSTFILE ${env.LSB_DJOB_HOSTFILE}`), total: undefined }
  }
  if (env.LSB_HOSTS) {
    return { scheduler: 'lsf', hosts: hostsFromList(env.LSB_HOSTS.trim().split(/\s+/), 'LSB_HOSTS'), total: undefined }
  }
  return undefined
}
