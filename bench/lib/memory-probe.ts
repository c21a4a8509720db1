/**
 * Preloaded into the controller by the memory section (`node --expose-gc --import <this file>`), leaving the
 * controller's code untouched: on SIGUSR2 it runs a full garbage collection and prints one line to stderr,
 * `@@MEMORY@@ <json of process.memoryUsage()>`, so the suite can tell memory still referenced from memory the
 * process merely has not returned to the system.
 */
process.on('SIGUSR2', () => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect) collect()
  process.stderr.write(`@@MEMORY@@ ${JSON.stringify(process.memoryUsage())}\n`)
})
