/** Small statistics over samples; every figure of the suite is a median of runs. */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** Nearest-rank percentile (p in 0..100): the smallest sample with at least p% of samples at or below it. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * s.length))
  return s[rank - 1] as number
}

/** The median of each numeric key over runs (keys missing from a run are skipped for that run). */
export function medianOf<K extends string>(runs: readonly Partial<Record<K, number>>[]): Partial<Record<K, number>> {
  const keys = new Set(runs.flatMap((r) => Object.keys(r) as K[]))
  const out: Partial<Record<K, number>> = {}
  for (const key of keys) {
    const values = runs.map((r) => r[key]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v))
    if (values.length > 0) out[key] = median(values)
  }
  return out
}

/** `a / b`, or undefined when either side is missing or b is zero. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined
  return a / b
}

export const MiB = 1024 * 1024

/** Megabytes (10^6 bytes) per second of a payload of `bytes` that took `ms` for the round trip. */
export function megabytesPerSecond(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000)
}
