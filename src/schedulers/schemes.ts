/**
 * Load-balancing schemes: pure functions from the candidate engines' loads, in least-recently-used order
 * (index 0 = the engine that was given a task longest ago), to the index of the engine that gets the task.
 * Definitions follow ipyparallel 7.1's `task_scheduler.py` (docs/wire-protocol.md, 'Schemes'); randomness is injected.
 */

/** Returns a number in [0, 1), like Math.random. */
export type Random = () => number

export type Scheme = (loads: readonly number[], random: Random) => number

/** The least loaded engine; among equals, the least recently used. */
export const leastload: Scheme = (loads) => {
  let best = 0
  for (let i = 1; i < loads.length; i++) if ((loads[i] as number) < (loads[best] as number)) best = i
  return best
}

/** Always the least recently used engine, whatever the loads. */
export const lru: Scheme = () => 0

/** A uniformly random engine. */
export const plainrandom: Scheme = (loads, random) => Math.floor(random() * loads.length)

/** Two random draws; the less recently used of the two. */
export const twobin: Scheme = (loads, random) => {
  const a = Math.floor(random() * loads.length)
  const b = Math.floor(random() * loads.length)
  return Math.min(a, b)
}

/** Two draws weighted by inverse load (1 / (1e-6 + load)); the lighter of the two. */
export const weighted: Scheme = (loads, random) => {
  const weights = loads.map((load) => 1 / (1e-6 + load))
  const total = weights.reduce((sum, w) => sum + w, 0)
  const draw = (): number => {
    let x = random() * total
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i] as number
      if (x < 0) return i
    }
    return weights.length - 1
  }
  const a = draw()
  const b = draw()
  return (weights[a] as number) >= (weights[b] as number) ? a : b
}

/** Schemes by the name used on the command line and in `task_scheme`. */
export const schemes: Readonly<Record<string, Scheme>> = { leastload, lru, plainrandom, twobin, weighted }

/**
 * The schemes one controller knows: the built-in ones and those its plugins add. Each controller has its own, so
 * two in one process never see each other's.
 */
export class SchemeRegistry {
  private readonly byName = new Map<string, Scheme>(Object.entries(schemes))

  constructor(extra: Readonly<Record<string, Scheme>> = {}) {
    for (const [name, scheme] of Object.entries(extra)) this.register(name, scheme)
  }

  /** Adds a scheme of your own under a name `--scheme` accepts (replacing one of that name). */
  register(name: string, scheme: Scheme): void {
    if (!/^[a-z][a-z0-9_-]*$/i.test(name)) throw new Error(`scheme name '${name}' must be letters, digits, - or _`)
    if (typeof scheme !== 'function') throw new Error(`scheme '${name}' must be a function (loads, random) => index`)
    this.byName.set(name, scheme)
  }

  get(name: string): Scheme | undefined {
    return this.byName.get(name)
  }

  /** Names in registration order, the built-in ones first. */
  names(): string[] {
    return [...this.byName.keys()]
  }
}
