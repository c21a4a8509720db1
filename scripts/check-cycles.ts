/**
 * Checks the layering of src/ (docs/architecture.md): imports point only down the list of layers, the three
 * process kinds (controller, engine, client) never import one another, and no module imports itself in a
 * cycle. Exits non-zero naming each offending import.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')
const rank: Record<string, number> = { common: 0, protocol: 1, transport: 2, schedulers: 3, controller: 4, engine: 4, client: 4, web: 5, cluster: 6, cli: 7, '.': 8 }

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : []
  })
}

const layerOf = (file: string): string => relative(root, file).split('/').length > 1 ? (relative(root, file).split('/')[0] as string) : '.'
const graph = new Map<string, string[]>()
const problems: string[] = []

for (const file of files(root)) {
  const text = readFileSync(file, 'utf8')
  const targets = [...text.matchAll(/^(?:import|export)[^'"]*from\s+['"](\.[^'"]+)['"]/gm)].map((m) => resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts')))
  graph.set(file, targets)
  for (const target of targets) {
    const from = layerOf(file)
    const to = layerOf(target)
    if (from === to) continue
    const down = (rank[to] ?? 99) < (rank[from] ?? -1)
    if (!down) problems.push(`${relative(root, file)} imports ${relative(root, target)}: ${from} may not import ${to}`)
  }
}

const state = new Map<string, 'visiting' | 'done'>()
function visit(file: string, path: string[]): void {
  if (state.get(file) === 'done') return
  if (state.get(file) === 'visiting') {
    problems.push(`import cycle: ${[...path.slice(path.indexOf(file)), file].map((f) => relative(root, f)).join(' -> ')}`)
    return
  }
  state.set(file, 'visiting')
  for (const next of graph.get(file) ?? []) visit(next, [...path, file])
  state.set(file, 'done')
}
for (const file of graph.keys()) visit(file, [])

if (problems.length > 0) {
  for (const p of problems) console.error(p)
  process.exit(1)
}
console.log(`layering ok: ${graph.size} modules, no cycles`)
