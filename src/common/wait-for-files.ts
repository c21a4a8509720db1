import { existsSync } from 'node:fs'

export interface WaitForFilesOptions {
  timeoutMs: number
  /** How often to look (default 100 ms). */
  pollMs?: number
  /** Asked at every look; true stops the wait early (the process that would write the file has exited, say). */
  giveUp?: () => boolean
}

/**
 * Waits until every one of `paths` exists, as a controller's connection files do once it has bound its sockets.
 * Resolves true when they all do, false on timeout or when `giveUp` says so; the caller words the error, since
 * only it knows what the file was for. It polls: a file renamed into place has no portable event to wait on.
 */
export async function waitForFiles(paths: readonly string[], options: WaitForFilesOptions): Promise<boolean> {
  const { timeoutMs, pollMs = 100, giveUp } = options
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (paths.every((path) => existsSync(path))) return true
    if (Date.now() >= deadline || giveUp?.() === true) return false
    await new Promise((resolve) => setTimeout(resolve, pollMs))
  }
}
