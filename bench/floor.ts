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
  /** The same two measures with messages of a load-balanced apply_request's shape (see PROTOCOL_SHAPED). */
  shapedLatencyMedianMs: number
  shapedPipelinedMsgsPerSec: number
}

/** The small message is one frame of this many bytes: the floor is the cost of the hops, not of a payload. */
const SMALL_BYTES = 100

/**
 * Frame sizes of a short apply_request as our client sends it (delimiter, signature, header, parent, metadata,
 * content, function descriptor, arguments). zeromq.js pays per frame, so this says how much of the gap between
 * the floor and our stack is the wire format itself rather than our code.
 */
const PROTOCOL_SHAPED = [9, 64, 220, 2, 110, 2, 70, 12]

export async function measureFloor(scope: Scope, sizes: Sizes): Promise<FloorFigures> {
  const script = join(repoRoot, 'dist', 'bench', 'floor-peer.js')
  const broker = start(scope, process.execPath, [script, 'broker'])
  const ports = await broker.waitForOutput(/ports (\d+) (\d+)/)
  start(scope, process.execPath, [script, 'worker', ports[2] as string])
  await broker.waitForOutput(/^ready$/m)

  const client = new zmq.Dealer({ sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0 })
  scope.teardown(() => client.close())
  client.connect(`tcp://127.0.0.1:${ports[1] as string}`)

  const roundTrip = async (payload: Buffer[]): Promise<void> => {
    await client.send(payload)
    const reply = await client.receive()
    if (reply.length !== payload.length || reply.at(-1)?.length !== payload.at(-1)?.length) throw new Error('the floor echoed something else')
  }
  const sequential = async (payload: Buffer[]): Promise<number[]> => {
    for (let i = 0; i < sizes.warmup; i++) await roundTrip(payload)
    const latencies: number[] = []
    for (let i = 0; i < sizes.sequential; i++) {
      const t0 = performance.now()
      await roundTrip(payload)
      latencies.push(performance.now() - t0)
    }
    return latencies
  }
  const pipelined = async (make: () => Buffer[]): Promise<number> => {
    const n = sizes.tasks
    const messages = Array.from({ length: n }, make)
    const t0 = performance.now()
    const receiving = (async () => {
      for (let got = 0; got < n; got++) await client.receive()
    })()
    for (const m of messages) await client.send(m)
    await receiving
    return n / ((performance.now() - t0) / 1000)
  }

  const small = (): Buffer[] => [Buffer.alloc(SMALL_BYTES, 'x')]
  const shaped = (): Buffer[] => PROTOCOL_SHAPED.map((size) => Buffer.alloc(size, 'x'))
  const latencies = await sequential(small())
  const pipelinedMsgsPerSec = await pipelined(small)
  const shapedLatencies = await sequential(shaped())
  const shapedPipelinedMsgsPerSec = await pipelined(shaped)

  const big = [Buffer.alloc(sizes.bulkBytes, 7)]
  const bulk: number[] = []
  for (let i = 0; i < sizes.bulkReps; i++) {
    const t0 = performance.now()
    await roundTrip(big)
    bulk.push(performance.now() - t0)
  }
  return {
    latencyMedianMs: median(latencies),
    latencyP99Ms: percentile(latencies, 99),
    pipelinedMsgsPerSec,
    bulkMBps: megabytesPerSecond(sizes.bulkBytes, median(bulk)),
    shapedLatencyMedianMs: median(shapedLatencies),
    shapedPipelinedMsgsPerSec,
  }
}
