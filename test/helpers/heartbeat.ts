/**
 * Heartbeat periods added to a budget for timers that fire late on a busy machine (2 cores, two test files and CPU
 * hogs beside them): one second at the tests' --ping=250.
 */
export const LOADED_SLACK_PERIODS = 4

/**
 * When the controller's heartbeat gives up an engine that stopped answering, counted from the moment it stopped.
 * It is given up at the first beat after more than `misses` unanswered pings, and its last answer may have come up to
 * a period before it stopped: so after at least `misses` periods and within `misses + 2` (the budget). Load only
 * delays timers, so `earliestMs` holds on any machine; `latestMs` adds LOADED_SLACK_PERIODS. The tests print the
 * figure they measured.
 */
export function heartbeatWindow(pingMs: number, misses = 10): { earliestMs: number; budgetMs: number; latestMs: number } {
  const budgetMs = pingMs * (misses + 2)
  return { earliestMs: pingMs * misses, budgetMs, latestMs: budgetMs + LOADED_SLACK_PERIODS * pingMs }
}

/**
 * When (epoch ms, by the controller's log clock) and why the controller unregistered engine `id`, from its log
 * (level info); undefined while it has not.
 */
export function unregistration(log: string, id: number): { atMs: number; why: string } | undefined {
  const m = new RegExp(`^(\\S+) \\[controller\\] INFO engine ${id} unregistered \\((.*)\\)$`, 'm').exec(log)
  return m ? { atMs: Date.parse(m[1] as string), why: m[2] as string } : undefined
}
