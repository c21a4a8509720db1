/**
 * `npm run demo`: start a local cluster (a controller and 4 engines), run a load-balanced map of a JavaScript
 * function over 1,000 inputs, check it against the serial map, show which engine ran how many tasks, and stop.
 */
import { Cluster } from '../src/index.js'

/** Some honest CPU work per input: the sum of a slowly converging series. */
const work = (x: number): number => {
  let sum = 0
  for (let k = 1; k <= 20_000; k++) sum += Math.sin(x * k) / k
  return Math.round(sum * 1e6) / 1e6
}

const inputs = [...Array(1000).keys()]
console.log('starting a controller and 4 engines ...')
{
  await using cluster = await Cluster.start({ n: 4 })
  const client = await cluster.connect()
  const lview = client.loadBalancedView()
  const started = performance.now()
  const ar = lview.map(work, inputs)
  const results = await ar
  const seconds = (performance.now() - started) / 1000
  const serial = inputs.map(work)
  const same = results.length === serial.length && results.every((r, i) => r === serial[i])
  console.log(`map of ${inputs.length} inputs done in ${seconds.toFixed(2)} s; equal to the serial map: ${same}`)
  console.log(`first results: ${results.slice(0, 5).join(', ')} ...`)
  const perEngine = new Map<number, number>()
  for (const m of ar.metadata) perEngine.set(m.engineId ?? -1, (perEngine.get(m.engineId ?? -1) ?? 0) + 1)
  for (const [id, count] of [...perEngine].sort(([a], [b]) => a - b)) console.log(`  engine ${id}: ${count} tasks`)
  if (!same) process.exitCode = 1
}
console.log('cluster stopped')
