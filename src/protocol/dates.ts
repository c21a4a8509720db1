/** Dates as Python's `datetime.isoformat()` writes them on the wire, and a parser for every form it may send. */

const ISO = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:?\d\d)?$/

/**
 * Now, as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC). The wall clock gives the milliseconds, as Python's would (the
 * monotonic clock drifts from it by milliseconds in a long-lived process, which put dates of this process out
 * of order with `new Date()`); the monotonic clock adds the microseconds.
 */
export function isoNow(nowMs: number = Date.now() + (performance.now() % 1)): string {
  return formatIsoMicros(nowMs)
}

export function formatIsoMicros(ms: number): string {
  const whole = Math.floor(ms)
  const micros = Math.min(999, Math.round((ms - whole) * 1000))
  const base = new Date(whole).toISOString() // …T07:08:45.811Z
  return `${base.slice(0, 23)}${String(micros).padStart(3, '0')}Z`
}

/**
 * Parses a wire date to epoch milliseconds (fractional: microseconds kept). Accepts `Z`, `±HH:MM`, `±HHMM`,
 * no zone (taken as UTC, as ipyparallel does), and 0-6 fraction digits. Returns undefined for anything else.
 */
export function parseIsoDate(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined
  const m = ISO.exec(text)
  if (!m) return undefined
  const [, y, mo, d, h, mi, s, frac = '', zone = 'Z'] = m
  // Date.UTC reads years 0-99 as 1900-1999; set the year on its own so year 42 stays 42.
  const date = new Date(Date.UTC(2000, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)))
  date.setUTCFullYear(Number(y))
  let ms = date.getTime()
  ms += Number(frac.padEnd(6, '0')) / 1000
  if (zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1
    const digits = zone.slice(1).replace(':', '')
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60_000
  }
  return ms
}

/** A wire date as a Date; undefined for anything `parseIsoDate` does not read (absent, null, another form). */
export function wireDate(text: unknown): Date | undefined {
  const ms = parseIsoDate(text)
  return ms === undefined ? undefined : new Date(ms)
}
