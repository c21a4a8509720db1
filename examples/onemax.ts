/**
 * One-max, the "hello world" of evolutionary algorithms, with its evaluations spread over engines: a population of
 * bit strings evolves towards all ones. Selection, crossover and mutation run here (they are cheap and depend on
 * one seeded random stream); each generation's evaluations, the costly part, are one `lview.map`. The same seed
 * gives the same run with any number of engines, and the program checks that against a serial run.
 *
 *   npx cluster start -n 2               # in another terminal (add --hwm 2 for maps of short chunks: docs/performance.md)
 *   npm run build && node dist/examples/onemax.js [--engines 2] [--seed 1] [--chunksize 25] [--generations 40]
 *
 * It connects to the cluster of the default profile (as `Client.connect()` does) and waits for `--engines` engines.
 */
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { Client } from '../src/index.js'

export interface OneMaxOptions {
  seed: number
  /** Individuals per generation. Default 300. */
  population?: number
  /** Default 40. */
  generations?: number
  /** Bits per individual. Default 100. */
  bits?: number
}

export interface OneMaxRun {
  /** The best fitness of each generation (the number of ones of its best individual). */
  bestByGeneration: number[]
  best: number[]
}

/**
 * The fitness of one individual: its number of ones. The rounds of arithmetic over its bits stand in for a costlier
 * evaluation (~0.2 ms here), the case where spreading the evaluations pays. Sent to the engines as source, so it
 * uses nothing but its argument.
 */
export const evaluate = (individual: number[]): number => {
  let mix = 0
  for (let round = 0; round < 1100; round++) {
    for (let i = 0; i < individual.length; i++) mix = (Math.imul(mix, 31) + (individual[i] as number) + round) | 0
  }
  let ones = 0
  for (const bit of individual) ones += bit
  // `mix` keeps the rounds from being optimised away without changing the fitness.
  return mix === 0x7fffffff ? ones + 0.5 : ones
}

/** A small seeded generator (mulberry32): the same seed gives the same run. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Runs the algorithm; `evaluateAll` gives the fitness of each individual of a generation, in order (a map over
 * engines, or a plain `pop.map(evaluate)`). Tournament selection of 3, two-point crossover (probability 0.5),
 * bit-flip mutation (probability 0.2 per individual, 0.05 per bit).
 */
export async function evolve(evaluateAll: (population: number[][]) => Promise<number[]> | number[], options: OneMaxOptions): Promise<OneMaxRun> {
  const { population: size = 300, generations = 40, bits = 100 } = options
  const rand = random(options.seed)
  const below = (n: number): number => Math.floor(rand() * n)
  let population = Array.from({ length: size }, () => Array.from({ length: bits }, (): number => (rand() < 0.5 ? 1 : 0)))
  let fitness = await evaluateAll(population)
  const bestByGeneration: number[] = []
  let best = population[0] as number[]
  for (let g = 0; g < generations; g++) {
    const pick = (): number[] => {
      let winner = below(size)
      for (let k = 1; k < 3; k++) {
        const other = below(size)
        if ((fitness[other] as number) > (fitness[winner] as number)) winner = other
      }
      return [...(population[winner] as number[])]
    }
    const offspring = Array.from({ length: size }, pick)
    for (let i = 0; i + 1 < size; i += 2) {
      if (rand() >= 0.5) continue
      const a = offspring[i] as number[]
      const b = offspring[i + 1] as number[]
      let [from, to] = [below(bits), below(bits)]
      if (from > to) [from, to] = [to, from]
      for (let j = from; j < to; j++) [a[j], b[j]] = [b[j] as number, a[j] as number]
    }
    for (const child of offspring) {
      if (rand() >= 0.2) continue
      for (let j = 0; j < bits; j++) if (rand() < 0.05) child[j] = 1 - (child[j] as number)
    }
    population = offspring
    fitness = await evaluateAll(population)
    let top = 0
    fitness.forEach((f, i) => {
      if (f > (fitness[top] as number)) top = i
    })
    bestByGeneration.push(fitness[top] as number)
    best = population[top] as number[]
  }
  return { bestByGeneration, best }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      engines: { type: 'string', default: '2' },
      seed: { type: 'string', default: '1' },
      chunksize: { type: 'string', default: '25' },
      generations: { type: 'string', default: '40' },
    },
  })
  const [engines, seed, chunksize, generations] = [values.engines, values.seed, values.chunksize, values.generations].map(Number) as [number, number, number, number]
  await using client = await Client.connect()
  await client.waitForEngines(engines, { timeoutMs: 60_000 })
  const lview = client.loadBalancedView()

  let t0 = performance.now()
  const serial = await evolve((population) => population.map(evaluate), { seed, generations })
  const serialMs = performance.now() - t0

  t0 = performance.now()
  const parallel = await evolve((population) => lview.map(evaluate, population, { chunksize }), { seed, generations })
  const parallelMs = performance.now() - t0

  const same = JSON.stringify(parallel) === JSON.stringify(serial)
  console.log(`best fitness by generation: ${parallel.bestByGeneration.join(' ')}`)
  console.log(`serial ${serialMs.toFixed(0)} ms, on the engines ${parallelMs.toFixed(0)} ms (${(serialMs / parallelMs).toFixed(2)}x); identical to serial: ${same}`)
  if (!same) process.exitCode = 1
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
