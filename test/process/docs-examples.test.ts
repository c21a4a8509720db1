// Every ```js block of the README and docs/*.md runs here. A block that imports 'jsparallel' is a complete program:
// it runs against a cluster of its own in the default profile of a temporary IPYTHONDIR, as a reader would run it
// after `npx cluster start`. A block with a default export and no import of 'jsparallel' is a scheme plugin: a
// controller loads it with --plugin and schedules tasks with each of its schemes. Any other block must run cleanly.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { codeBlocks, type CodeBlock } from '../helpers/markdown.js'
import { binPath, repoRoot, startProcess, tempDir, waitFor, type Proc, type Teardown } from '../helpers/processes.js'

const ENGINES = 2

/** A controller and ENGINES engines of ours in `<IPYTHONDIR>/profile_default`; returns that IPYTHONDIR. */
async function startDefaultProfileCluster(t: Teardown, controllerArgs: string[] = []): Promise<{ ipythonDir: string; controller: Proc }> {
  const ipythonDir = tempDir(t, 'jsparallel-ipythondir-')
  const env = { IPYTHONDIR: ipythonDir }
  const controller = startProcess(t, process.execPath, [binPath('controller'), '--ping=250', '--log-level=warn', ...controllerArgs], { env })
  const security = join(ipythonDir, 'profile_default', 'security')
  const files = ['ipcontroller-client.json', 'ipcontroller-engine.json'].map((f) => join(security, f))
  await waitFor(() => files.every((f) => existsSync(f)) || controller.child.exitCode !== null, 'the controller connection files')
  if (controller.child.exitCode !== null) throw new Error(`controller exited: ${controller.output()}`)
  for (let i = 0; i < ENGINES; i++) startProcess(t, process.execPath, [binPath('engine'), '--log-level=warn'], { env })
  const client = new Client({ ipythonDir, log: silentLogger })
  try {
    await client.waitForEngines(ENGINES, { timeoutMs: 60_000 })
  } finally {
    await client.close()
  }
  return { ipythonDir, controller }
}

/**
 * Writes `code` to a `.mjs` file inside the repository, so that `import ... from 'jsparallel'` resolves through
 * package.json's "exports" to the build, and removes it when the test ends.
 */
function writeModule(t: Teardown, code: string): string {
  const parent = join(repoRoot, 'dist', 'doc-examples')
  mkdirSync(parent, { recursive: true })
  const dir = mkdtempSync(join(parent, 'run-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'example.mjs')
  writeFileSync(file, code)
  return file
}

/** Runs an example under `node` with IPYTHONDIR set; resolves with its exit code and output (or fails at the ceiling). */
async function runExample(t: Teardown, file: string, ipythonDir: string, timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; output: string }> {
  const proc = startProcess(t, process.execPath, [file], { env: { IPYTHONDIR: ipythonDir } })
  let stdout = ''
  proc.child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  let timer: NodeJS.Timeout | undefined
  const ceiling = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs)
  })
  const ended = await Promise.race([proc.exited, ceiling])
  clearTimeout(timer)
  if (ended === 'timeout') throw new Error(`the example did not finish within ${timeoutMs} ms; output:\n${proc.output()}`)
  return { code: ended.code, stdout, output: proc.output() }
}

/**
 * What the docs promise in their `// ...` comments, for the blocks that print something deterministic, keyed by a
 * line the block contains. Checked on the example's stdout lines.
 */
const promises: { contains: string; check: (t: Test, lines: string[]) => void }[] = [
  {
    contains: 'map((x) => x * x, [1, 2, 3, 4])',
    check: (t, lines) => {
      t.same(lines, ['[ 1, 4, 9, 16 ]'], 'the first program prints [ 1, 4, 9, 16 ]')
    },
  },
  {
    contains: 'lview.parallel((x) => 10 * x ** 4)',
    check: (t, lines) => {
      t.equal(lines[0], '3', 'apply prints 3')
      t.equal(lines[1], '32', 'the map has 32 results')
      t.same(lines.slice(2, 5).sort(), ['2', '4', '6'], 'the unordered map prints 2, 4, 6')
      t.equal(lines[5], '[ 10, 160, 810 ]', 'the parallel function maps to [ 10, 160, 810 ]')
    },
  },
  {
    contains: 'await big.waitInteractive()',
    check: (t, lines) => {
      t.equal(lines[0], 'false', 'not ready at once')
      t.equal(lines[1], '200', 'get returns 200')
      t.match(lines[2], /^\d+ true$/, 'an engine id and a started Date')
      t.equal(lines.at(-1), '1000', 'the last of the big map is 1000')
    },
  },
  {
    contains: 'depend(nodeAtLeast, 18)',
    check: (t, lines) => {
      t.same(lines, ['42 cleaned number', '42', 'number'], 'after/follow/Dependency, depend and requires as promised')
    },
  },
  {
    contains: 'const rerun = client.resubmit(ids)',
    check: (t, lines) => {
      t.same(lines, ['[ 1, 4, 9 ]', '3 true', '[ 1, 4, 9 ]', 'false', '6', '0'], 'getResult, dbQuery, resubmit, hubHistory and purge as promised')
    },
  },
  {
    contains: 'await cluster.stopEngines([id])',
    check: (t, lines) => {
      t.same(lines, ['[ 10, 20, 30 ]', '2'], 'the Cluster example maps, then has 2 engines running after adding and stopping one')
    },
  },
  {
    contains: 'const total = await Cluster.run(',
    check: (t, lines) => {
      t.same(lines, ['36'], 'Cluster.run returns what main returned')
    },
  },
  {
    contains: 'await dv.push({ factor: 3 })',
    check: (t, lines) => {
      t.same(lines, ['[ 1006, 1012, 1018 ]', '[ 3, 3 ]', '[ 10, 35 ]', '10', '42 42'], 'execute, push, map, pull, scatter, gather as promised')
    },
  },
  {
    contains: "engine.execute('import numpy as np')",
    check: (t, lines) => {
      t.same(lines, [`${process.platform} loading`, 'true SyntaxError'], 'top-level await, import() and output; Python code is a SyntaxError')
    },
  },
  {
    contains: "client.broadcastView([second, first], { coalescing: true })",
    check: (t, lines) => {
      t.same(lines, ["[ 'second', 'first' ]", 'RangeError true', "[ 'second', 'RangeError' ]"], 'the broadcast view keeps target order and each engine\'s error')
    },
  },
  {
    contains: 'const slow = lview.imap(',
    check: (t, lines) => {
      t.same(lines, ["[ 10, 'Error', 30 ]", '2'], 'returnExceptions, displayOutputs, and a cancelled imap that prints nothing')
    },
  },
  {
    contains: "registerSerializer(Money, { name: 'Money'",
    check: (t, lines) => {
      t.same(lines, ['true 400'], 'a registered class crosses to the engine and back')
    },
  },
  {
    contains: "new Client({ url: `tcp://127.0.0.1:${registration}`, key })",
    check: (t, lines) => {
      t.same(lines, ['reached'], 'a client from the registration URL and key')
    },
  },
  {
    contains: 'await urgent.apply(() => 42)',
    check: (t, lines) => {
      t.equal(lines[0], '42 100', 'the urgent task gives 42 and the backlog 100 results')
    },
  },
]

const docs = [join(repoRoot, 'README.md'), ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => join(repoRoot, 'docs', f))]
const blocks: (CodeBlock & { file: string })[] = docs.flatMap((file) => codeBlocks(file, 'js').map((b) => ({ ...b, file })))

t.test('the docs have JavaScript examples, and the promised outputs above name blocks that exist', async (t) => {
  t.ok(blocks.some((b) => b.file.endsWith('README.md')), 'README.md has ```js blocks')
  for (const promise of promises) t.ok(blocks.some((b) => b.code.includes(promise.contains)), `a block contains ${promise.contains}`)
})

/** A readable name for a block: its file and line, and its first line of code (or comment) without a trailing comment. */
function nameOf(block: CodeBlock & { file: string }): string {
  const lines = block.code.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  const first = lines.find((l) => !l.startsWith('import ')) ?? lines[0] ?? ''
  const text = first.startsWith('//') ? first : first.replace(/\s+\/\/.*$/, '')
  return `${relative(repoRoot, block.file)}:${block.line}: ${text.length > 80 ? `${text.slice(0, 77)}...` : text}`
}

const importsJsparallel = (code: string): boolean => /\bfrom\s+['"]jsparallel['"]/.test(code)
const isSchemePlugin = (code: string): boolean => !importsJsparallel(code) && /^export default\b/m.test(code)

for (const block of blocks) {
  if (importsJsparallel(block.code)) {
    t.test(`${nameOf(block)} (runs against a cluster)`, async (t) => {
      const { ipythonDir } = await startDefaultProfileCluster(t)
      const { code, stdout, output } = await runExample(t, writeModule(t, block.code), ipythonDir)
      t.equal(code, 0, 'exit code 0', { output })
      const lines = stdout.split('\n').filter((l) => l !== '')
      for (const promise of promises) if (block.code.includes(promise.contains)) promise.check(t, lines)
    })
  } else if (isSchemePlugin(block.code)) {
    t.test(`${nameOf(block)} (loads as a scheme plugin)`, async (t) => {
      const file = writeModule(t, block.code)
      const plugin = (await import(pathToFileURL(file).href)) as { default: Record<string, unknown> }
      const names = Object.keys(plugin.default)
      t.ok(names.length > 0, 'the plugin exports at least one scheme')
      for (const name of names) {
        t.test(`scheme ${name}`, async (t) => {
          const { ipythonDir, controller } = await startDefaultProfileCluster(t, ['--plugin', file, `--scheme=${name}`])
          const client = new Client({ ipythonDir, log: silentLogger })
          t.teardown(() => client.close())
          const inputs = [...Array(20).keys()]
          t.same(await client.loadBalancedView().map((x: number) => x * 2, inputs, { chunksize: 1 }), inputs.map((x) => x * 2))
          t.notMatch(controller.output(), /scheme failed|error/i, 'the controller used the scheme without falling back')
        })
      }
    })
  } else {
    t.test(`${nameOf(block)} (runs as a module)`, async (t) => {
      const { code, output } = await runExample(t, writeModule(t, block.code), tempDir(t, 'jsparallel-ipythondir-'))
      t.equal(code, 0, 'exit code 0', { output })
    })
  }
}
