// The package as a user gets it: `npm pack` of a copy of this repository, installed in a fresh project outside it.
// The project compiles a TypeScript file against the package's types, starts a cluster with `npx cluster start`,
// maps a function of its own module (which imports a package of the project's own) and stops the cluster with
// `npx cluster stop`; a global install into a temporary prefix gives the three commands on PATH, and its cluster,
// started outside the project, runs the project's function too.
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import t, { type Test } from 'tap'
import { processAlive, repoRoot, startProcess, tempDir, waitFor, type Proc, type Teardown } from '../helpers/processes.js'

interface PackedFile {
  path: string
  size: number
}
interface PackResult {
  filename: string
  size: number
  unpackedSize: number
  entryCount: number
  files: PackedFile[]
}
interface Manifest {
  version: string
  exports: Record<string, string | Record<string, string>>
  bin: Record<string, string>
}

// Packing builds the package (tsc) and the project installs ~120 packages from npm's cache: minutes on a loaded
// machine, well past the suite's per-file timeout.
t.setTimeout(600_000)

const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Manifest

/** Whatever npm put in the environment of `npm test` (npm_config_*, npm_package_*) must not steer the npm we run. */
const cleanEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name) && name !== 'INIT_CWD'),
)
const npmEnv: NodeJS.ProcessEnv = { ...cleanEnv, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' }

/** Runs a command to its end (failing at the ceiling); resolves with its output, rejects when it exits non-zero. */
async function run(t: Teardown, command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = npmEnv, timeoutMs = 240_000): Promise<string> {
  const proc = startProcess(t, command, args, { cwd, env })
  let timer: NodeJS.Timeout | undefined
  const ceiling = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs)
  })
  const ended = await Promise.race([proc.exited, ceiling])
  clearTimeout(timer)
  const what = `${command} ${args.join(' ')} (in ${cwd})`
  if (ended === 'timeout') throw new Error(`${what} did not finish within ${timeoutMs} ms; output:\n${proc.output()}`)
  if (ended.code !== 0) throw new Error(`${what} exited with ${ended.code ?? ended.signal}; output:\n${proc.output()}`)
  return proc.output()
}

/** Stdout only, for commands whose output is parsed (`npm pack --json`); the lifecycle scripts print there too. */
async function runForStdout(t: Teardown, command: string, args: string[], cwd: string): Promise<string> {
  const proc = startProcess(t, command, args, { cwd, env: npmEnv })
  let stdout = ''
  proc.child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  const { code } = await proc.exited
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}; output:\n${proc.output()}`)
  return stdout
}

/**
 * `npm pack` in a copy of the repository without dist/ (and with a stale file where the build goes), so that the
 * package's own prepack/prepare scripts make what ships. The copy borrows this repository's node_modules for tsc.
 */
async function pack(t: Teardown, root: string): Promise<PackResult & { tarball: string }> {
  const copy = join(root, 'source')
  const skip = new Set(['node_modules', 'dist', '.git', '.tap', 'bench/results'].map((name) => join(repoRoot, name)))
  cpSync(repoRoot, copy, { recursive: true, filter: (source) => !skip.has(source) })
  symlinkSync(realpathSync(join(repoRoot, 'node_modules')), join(copy, 'node_modules'))
  mkdirSync(join(copy, 'dist', 'src'), { recursive: true })
  writeFileSync(join(copy, 'dist', 'src', 'stale.js'), '// a build output whose source is gone\n')
  const out = join(root, 'pack')
  mkdirSync(out)
  const stdout = await runForStdout(t, 'npm', ['pack', '--json', '--pack-destination', out], copy)
  const json = stdout.slice(stdout.search(/^\[$/m))
  const [result] = JSON.parse(json) as PackResult[]
  if (!result) throw new Error(`npm pack printed no result:\n${stdout}`)
  return { ...result, tarball: join(out, result.filename) }
}

/** The paths a manifest's `exports` (every condition of every subpath) and `bin` point at. */
function manifestTargets(m: Manifest): string[] {
  const exported = Object.values(m.exports).flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target)))
  return [...exported, ...Object.values(m.bin)].map((p) => p.replace(/^\.\//, ''))
}

/** A user's project: a small package of its own, a module that uses it, a program mapping that module's function. */
function writeProject(dir: string): void {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({
    name: 'user-project',
    version: '1.0.0',
    private: true,
    type: 'module',
    // zeromq's install script only checks its shipped binaries; better-sqlite3's would compile SQLite here (minutes,
    // since its prebuilt download cannot be reached), and the in-memory task store this test uses does not need it.
    allowScripts: { zeromq: true, 'better-sqlite3': false },
  }, null, 2))
  mkdirSync(join(dir, 'vendor', 'tiny-dep'), { recursive: true })
  writeFileSync(join(dir, 'vendor', 'tiny-dep', 'package.json'), JSON.stringify({ name: 'tiny-dep', version: '1.0.0', type: 'module', exports: './index.js' }))
  writeFileSync(join(dir, 'vendor', 'tiny-dep', 'index.js'), 'export function triple(x) {\n  return 3 * x\n}\n')
  mkdirSync(join(dir, 'lib'))
  writeFileSync(join(dir, 'lib', 'work.js'), "import { triple } from 'tiny-dep'\n\nexport function work(x) {\n  return triple(x) + 1\n}\n")
  writeFileSync(join(dir, 'main.js'), [
    "import { Client, moduleFunction } from 'jsparallel'",
    "import { work } from './lib/work.js'",
    '',
    'const client = new Client({ profileDir: process.argv[2] })',
    'await client.waitForEngines(Number(process.argv[3]))',
    'const inputs = [...Array(20).keys()]',
    "const work2 = moduleFunction(new URL('./lib/work.js', import.meta.url), 'work')",
    'const view = client.loadBalancedView()',
    '// A map sends the module in a chunk wrapper, an apply as a module reference: the engine imports it either way.',
    'const results = [...(await view.map(work2, inputs)), await view.apply(work2, 100)]',
    'const engines = await client.directView().apply(() => process.pid)',
    'console.log(JSON.stringify({ results, serial: [...inputs.map(work), work(100)], engines }))',
    'await client.close()',
    '',
  ].join('\n'))
  writeFileSync(join(dir, 'check.ts'), [
    "import { Client, moduleFunction, RemoteError, type AsyncResult } from 'jsparallel'",
    '',
    "const client: Client = new Client({ profileDir: 'profile', timeoutMs: 1000 })",
    'const view = client.loadBalancedView()',
    'const squares: number[] = await view.map((x: number) => x * x, [1, 2, 3])',
    'const ar: AsyncResult<number> = view.apply((a: number, b: number) => a + b, 1, 2)',
    "const work = moduleFunction<(x: number) => number>(new URL('./lib/work.js', import.meta.url), 'work')",
    'const worked: number[] = await view.map(work, [1, 2])',
    '// @ts-expect-error the types are real: a map takes an iterable, not a number',
    'view.map((x: number) => x, 5)',
    'console.log(squares, await ar, worked, RemoteError.name)',
    'await client.close()',
    '',
  ].join('\n'))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      target: 'ES2022',
      noEmit: true,
      skipLibCheck: false,
      // The user's own @types/node; this repository's copy saves installing it again.
      typeRoots: [join(realpathSync(join(repoRoot, 'node_modules')), '@types')],
      types: ['node'],
    },
    files: ['check.ts'],
  }, null, 2))
}

/** The PIDs a `cluster start` reported for its controller and engines, and its own from the PID file. */
function clusterPids(cluster: Proc, profileDir: string): number[] {
  const children = [...cluster.output().matchAll(/started, pid (\d+)/g)].map((m) => Number(m[1]))
  const pidFile = join(profileDir, 'pid', 'cluster.pid')
  return existsSync(pidFile) ? [Number(readFileSync(pidFile, 'utf8')), ...children] : children
}

t.test('npm pack, then a fresh project installs the tarball and uses it', async (t) => {
  const root = tempDir(t, 'jsparallel-package-')
  t.ok(relative(repoRoot, root).startsWith('..'), 'the temporary project is outside the repository')
  const packed = await pack(t, root)
  t.comment(`tarball ${packed.filename}: ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${packed.entryCount} files`)

  t.test('the tarball holds what users need and nothing else', async (t) => {
    const paths = new Set(packed.files.map((f) => f.path))
    for (const target of manifestTargets(manifest)) t.ok(paths.has(target), `${target} (named by exports or bin) is in the tarball`)
    for (const name of ['package.json', 'README.md', 'LICENSE', 'bin/run.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/index.d.ts.map', 'src/index.ts']) {
      t.ok(paths.has(name), `${name} is in the tarball`)
    }
    const unwanted = [...paths].filter((p) => /^(test|bench|examples|scripts|dist\/(?!src\/))\//.test(p) || /^tsconfig|^eslint|^\.ci\//.test(p))
    t.same(unwanted, [], 'no tests, benches, examples, scripts or build tooling')
    t.notOk(paths.has('dist/src/stale.js'), 'a stale build output is not packed: prepack starts from an empty dist/src')
    t.ok(packed.unpackedSize < 3_000_000, `unpacked size ${packed.unpackedSize} bytes stays small`)
  })

  const project = join(root, 'project')
  mkdirSync(project)
  writeProject(project)
  await run(t, 'npm', ['install', '--prefer-offline', packed.tarball, './vendor/tiny-dep'], project)
  const installed = JSON.parse(readFileSync(join(project, 'node_modules', 'jsparallel', 'package.json'), 'utf8')) as Manifest
  t.equal(installed.version, manifest.version, 'the installed package is this one')

  t.test('a TypeScript file importing Client compiles with tsc --noEmit under strict', async (t) => {
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')
    const output = await run(t, process.execPath, [tsc, '-p', project], project)
    t.equal(output.trim(), '', 'tsc reports nothing')
  })

  t.test('each command answers --version', async (t) => {
    const names = Object.keys(manifest.bin)
    const outputs = await Promise.all(names.map((name) => run(t, 'npx', ['--no-install', name, '--version'], project)))
    names.forEach((name, i) => t.equal(outputs[i]?.trim(), manifest.version, `npx ${name} --version`))
  })

  t.test('npx cluster start; the project maps its own module\'s function; npx cluster stop', async (t) => {
    await clusterRun(t, 'npx', ['--no-install', 'cluster'], project, npmEnv, join(project, 'profile'), project, 2)
  })

  t.test('a global install into a temporary prefix puts cluster, controller and engine on PATH', async (t) => {
    const prefix = join(root, 'global')
    // --ignore-scripts for the same reason as the project's denial of better-sqlite3's (see writeProject).
    await run(t, 'npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', packed.tarball], root)
    const env = { ...cleanEnv, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` }
    const names = Object.keys(manifest.bin)
    const outputs = await Promise.all(names.map((name) => run(t, name, ['--version'], root, env)))
    names.forEach((name, i) => t.equal(outputs[i]?.trim(), manifest.version, `${name} --version from PATH`))
    // Engines of the global copy, started outside the project: the project's module still finds its own
    // dependency, since it is imported from where it lives (not from the engine's package or working directory).
    await clusterRun(t, 'cluster', [], root, env, join(root, 'global-profile'), project, 1)
  })
})

/**
 * `<command...> start -n <engines>` in `cwd` (in `profileDir`, never the user's ~/.jsparallel), then the project's main.js maps its module's function on that
 * cluster, then `<command...> stop`; the cluster and what it started are killed by PID if anything fails.
 */
async function clusterRun(
  t: Test, command: string, prefixArgs: string[], cwd: string, env: NodeJS.ProcessEnv, profileDir: string, project: string, engineCount: number,
): Promise<void> {
  const cluster = startProcess(t, command, [...prefixArgs, 'start', '-n', String(engineCount), '--profile-dir', profileDir, '--ping=250'], { cwd, env })
  // npx runs the command in a child of its own, and the controller and engines are the cluster's children: they go
  // by PID when the test ends, and also when a tap timeout ends this process before the teardowns run.
  const killAll = (): void => {
    for (const pid of clusterPids(cluster, profileDir)) if (processAlive(pid)) process.kill(pid, 'SIGKILL')
  }
  process.on('exit', killAll)
  t.teardown(() => {
    killAll()
    process.off('exit', killAll)
  })
  await cluster.waitForOutput(/cluster ready/, 120_000)
  const pids = clusterPids(cluster, profileDir)
  t.equal(pids.length, engineCount + 2, `the cluster, a controller and ${engineCount} engines`)

  const output = await run(t, process.execPath, ['main.js', profileDir, String(engineCount)], project, cleanEnv, 120_000)
  const { results, serial, engines } = JSON.parse(output.trim().split('\n').at(-1) ?? '') as { results: number[]; serial: number[]; engines: number[] }
  t.same(results, serial, 'a map and an apply of the project\'s function give the serial answers')
  t.equal(new Set(engines).size, engineCount, `on ${engineCount} engines`)
  for (const pid of engines) t.ok(pids.includes(pid), `engine pid ${pid} is one the cluster started`)

  t.match(await run(t, command, [...prefixArgs, 'stop', '--profile-dir', profileDir], cwd, env), /sent SIGINT/)
  await waitFor(() => cluster.child.exitCode !== null || cluster.child.signalCode !== null, 'cluster start to exit', 60_000)
  await waitFor(() => pids.every((pid) => !processAlive(pid)), 'the cluster, controller and engines to exit', 60_000)
  t.equal(cluster.child.exitCode, 0, 'cluster start exits 0')
}
