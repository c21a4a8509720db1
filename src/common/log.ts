/** A small leveled logger writing one line per event to stderr; the CLIs choose the level. */

import { realClock, type Clock } from './clock.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export interface Logger {
  debug(message: string): void
  info(message: string): void
  warn(message: string): void
  error(message: string): void
}

/** Accepts ipyparallel's numeric levels (10, 20, 30, 40) and names (DEBUG, info, ...). */
export function parseLogLevel(value: string): LogLevel {
  const lower = value.toLowerCase()
  if (lower in rank) return lower as LogLevel
  const n = Number(value)
  if (Number.isFinite(n)) {
    if (n <= 10) return 'debug'
    if (n <= 20) return 'info'
    if (n <= 30) return 'warn'
    if (n <= 50) return 'error'
    return 'silent'
  }
  if (lower === 'warning') return 'warn'
  if (lower === 'critical') return 'error'
  throw new Error(`unknown log level '${value}': use debug, info, warn, error, silent or 10-50`)
}

export function createLogger(name: string, level: LogLevel = 'info', write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const threshold = rank[level]
  const emit = (lvl: LogLevel, message: string): void => {
    if (rank[lvl] < threshold) return
    write(`${new Date().toISOString()} [${name}] ${lvl.toUpperCase()} ${message}\n`)
  }
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  }
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/**
 * Warnings about something a peer can cause at will (bad messages): the first `perWindow` of each window are
 * logged, the rest only counted, and the count is reported with the next warning after the window. Keeps a
 * flood of bad input from flooding the log. No timer: nothing is left running.
 */
export class RateLimitedWarnings {
  private windowStart = -Infinity
  private inWindow = 0
  private suppressed = 0

  constructor(private readonly log: Logger, private readonly clock: Clock = realClock, private readonly perWindow = 5, private readonly windowMs = 10_000) {}

  warn(message: string): void {
    const now = this.clock.monotonic()
    if (now - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0) this.log.warn(`(${this.suppressed} more like this were not logged in the last ${Math.round((now - this.windowStart) / 1000)} s)`)
      this.windowStart = now
      this.inWindow = 0
      this.suppressed = 0
    }
    if (this.inWindow < this.perWindow) {
      this.inWindow++
      this.log.warn(message)
    } else {
      this.suppressed++
    }
  }
}
