import cliProgress from 'cli-progress'
import { ConfigError } from '../common/errors.js'

/** Options of `waitInteractive`. */
export interface WaitInteractiveOptions {
  /**
   * Where to report. On a TTY: a progress bar redrawn as tasks finish; otherwise one summary line at the end.
   * Default: `process.stderr`.
   */
  stream?: NodeJS.WritableStream & { isTTY?: boolean }
  /** How often progress is checked and the bar redrawn, in ms. Default 100. */
  intervalMs?: number
  /** Stop waiting after this many ms (the tasks keep running). Default: no limit. */
  timeoutMs?: number
}

/** What the progress display needs from a result. */
export interface ProgressSource {
  /** Tasks finished so far. */
  done(): number
  /** Tasks in all. */
  readonly total: number
  /** Name shown before the bar (the function's name). */
  readonly label: string
  /** Ms since the first task was submitted (to the last reply once all are done). */
  elapsedMs(): number
  ready(): boolean
  wait(timeoutMs?: number): Promise<boolean>
}

/**
 * Waits for `source` while showing `done/total` tasks and the elapsed time. Resolves to whether everything is
 * done (false when `timeoutMs` ran out); failed tasks count as done and do not reject.
 */
export async function waitInteractive(source: ProgressSource, options: WaitInteractiveOptions = {}): Promise<boolean> {
  const stream = options.stream ?? process.stderr
  const intervalMs = options.intervalMs ?? 100
  const timeoutMs = options.timeoutMs
  if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) throw new ConfigError(`waitInteractive: intervalMs must be a positive number of ms, not ${intervalMs}`)
  if (timeoutMs !== undefined && !(timeoutMs >= 0)) throw new ConfigError(`waitInteractive: timeoutMs must be a non-negative number of ms, not ${timeoutMs}`)
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs
  const bar = stream.isTTY
    ? new cliProgress.SingleBar(
        {
          stream,
          format: `${source.label ? `${source.label} ` : ''}[{bar}] {value}/{total} tasks | {duration_formatted}`,
          fps: Math.min(10, 1000 / intervalMs),
          hideCursor: null,
          clearOnComplete: false,
          stopOnComplete: false,
          gracefulExit: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined
  bar?.start(source.total, source.done())
  try {
    while (!source.ready() && Date.now() < deadline) {
      await source.wait(Math.min(intervalMs, deadline - Date.now()))
      bar?.update(source.done())
    }
  } finally {
    bar?.update(source.done())
    bar?.stop()
  }
  const done = source.ready()
  if (!bar) {
    const seconds = (source.elapsedMs() / 1000).toFixed(1)
    const what = source.label ? `${source.label}: ` : ''
    const state = done ? `done in ${seconds} s` : `done, still running after ${seconds} s`
    stream.write(`${what}${source.done()}/${source.total} tasks ${state}\n`)
  }
  return done
}
