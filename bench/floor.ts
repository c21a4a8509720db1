/**
 * Section 1, the floor: a raw zeromq round trip with the hops our stack has (client -> broker -> worker and
 * back, three processes, the broker forwarding in JavaScript), measured in the same run as everything else.
 * The client is this process, as it is for our stack.
 */
import { join } from 'node:path'
import * as zmq from 'zeromq'
import type { Sizes } from './lib/config.js'
import { repoRoot, start, type Scope } from './lib/processes.js'
import { megabytesPerSecond, median, percentile } from './lib/stats.js'

export interface FloorFigures {
  /** Median of sequential round trips of a small message, ms. */
  latencyMedianMs: number
  latencyP99Ms: number
  /** Small messages per second with all of them sent at once and echoed back. */
  pipelinedMsgsPerSec: number
  /** A `bulkBytes` frame echoed: bytes / round-trip time, MB/s (10^6 bytes). */
  bulkMBps: number
}

/** The small message is one frame of this many bytes: the floor is the cost of the hops, not of a payload. */
const SMALL_BYTES = 100

export async function measureFloor(scope: Scope, sizes: Sizes): Promise<FloorFigures> {
  const script = join(repoRoot, 'dist', 'bench', 'floor-peer.js')
  const broker = start(scope, process.execPath, [script, 'broker'])
  const ports = await broker.waitForOutput(/ports (\d+) (\d+)/)
  start(scope, process.execPath, [script, 'worker', ports[2] as string])
  await broker.waitForOutput(/^ready$/m)

  const client = new zmq.Dealer({ sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0 })
  scope.teardown(() => client.close())
  client.connect(`tcp://127.0.0.1:${ports[1] as string}`)
  const small = Buffer.alloc(SMALL_BYTES, 'x')

  const roundTrip = async (payload: Buffer): Promise<Buffer> => {
    await client.send(payload)
    const [reply] = await client.receive()
    if (!reply || reply.length !== payload.length) throw new Error('the floor echoed something else')
    return reply
  }

  for (let i = 0; i < sizes.warmup; i++) await roundTrip(small)
  const latencies: number[] = []
  for (let i = 0; i < sizes.sequential; i++) {
    const t0 = performance.now()
    await roundTrip(small)
    latencies.push(performance.now() - t0)
  }

  const n = sizes.tasks
  let t0 = performance.now()
  const receiving = (async () => {
    for (let got = 0; got < n; got++) await client.receive()
  })()
  for (let i = 0; i < n; i++) await client.send(small)
  await receiving
  const pipelinedMsgsPerSec = n / ((performance.now() - t0) / 1000)

  const big = Buffer.alloc(sizes.bulkBytes, 7)
  const bulk: number[] = []
  for (let i = 0; i < sizes.bulkReps; i++) {
    t0 = performance.now()
    await roundTrip(big)
    bulk.push(performance.now() - t0)
  }
  return {
    latencyMedianMs: median(latencies),
    latencyP99Ms: percentile(latencies, 99),
    pipelinedMsgsPerSec,
    bulkMBps: megabytesPerSecond(sizes.bulkBytes, median(bulk)),
  }
}
