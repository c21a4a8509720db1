/**
 * `npm run test:compat`: ipyparallel's own test suite, as Debian's python3-ipyparallel installs it, run
 * unchanged against our controller (test/compat/ipp_jsparallel.py redirects every controller it starts).
 *
 *   npm run test:compat                       the modules the drop-in promise covers (below)
 *   npm run test:compat -- --stock            the same modules against ipyparallel's own controller (baseline)
 *   npm run test:compat -- test_lbview -k abort   chosen modules; arguments after the modules go to pytest
 *
 * Prints one line per test that failed, then `compat: N passed, N failed, N skipped, N xfailed` (pytest's
 * xpasses count as passed), and exits non-zero if any test failed or errored. A `-k` given here replaces the
 * deselection of test_become_dask.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const python = '/usr/bin/python3'

/** The modules of the "done when": everything that talks to a controller through the stock client. */
const MODULES = [
  'test_client', 'test_lbview', 'test_dependency', 'test_asyncresult', 'test_view', 'test_view_broadcast',
  'test_remotefunction', 'test_executor', 'test_magics', 'test_cluster', 'test_apps',
]
/** Needs a Python Hub to turn into a Dask scheduler; fails on the stock controller here too (reference §8.3). */
const DESELECTED = 'not test_become_dask'

export interface Outcome {
  name: string
  result: 'passed' | 'failed' | 'skipped' | 'xfailed'
  message?: string
}

/** Test outcomes from pytest's JUnit XML (an xfail is a skip of type pytest.xfail; an xpass is a plain pass). */
export function parseJunit(xml: string): Outcome[] {
  const outcomes: Outcome[] = []
  for (const m of xml.matchAll(/<testcase ([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const attrs = m[1] as string
    const body = m[3] ?? ''
    const attr = (key: string): string => attrs.match(new RegExp(`${key}="([^"]*)"`))?.[1] ?? ''
    const name = `${attr('classname')}::${attr('name')}`
    const failure = body.match(/<(failure|error)(?: message="([^"]*)")?/)
    if (failure) outcomes.push({ name, result: 'failed', message: unescape(failure[2] ?? failure[1] as string) })
    else if (/<skipped[^>]*type="pytest.xfail"/.test(body)) outcomes.push({ name, result: 'xfailed' })
    else if (/<skipped/.test(body)) outcomes.push({ name, result: 'skipped' })
    else outcomes.push({ name, result: 'passed' })
  }
  return outcomes
}

function unescape(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#10;/g, ' ').replace(/&amp;/g, '&')
}

async function main(argv: string[]): Promise<number> {
  const stock = argv.includes('--stock')
  const rest = argv.filter((a) => a !== '--stock')
  const chosen = rest.filter((a) => /^test_\w+$/.test(a))
  const extra = rest.filter((a) => !chosen.includes(a))
  const modules = (chosen.length > 0 ? chosen : MODULES).map((m) => `ipyparallel.tests.${m}`)
  const work = mkdtempSync(join(tmpdir(), 'jsparallel-compat-'))
  const junit = join(work, 'junit.xml')
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }
  const plugin: string[] = []
  if (!stock) {
    env.IPP_TEST_CONTROLLER_CMD = `${process.execPath} ${join(repo, 'bin', 'controller.js')}`
    env.PYTHONPATH = [join(repo, 'test', 'compat'), process.env.PYTHONPATH].filter(Boolean).join(':')
    plugin.push('-p', 'ipp_jsparallel')
  }
  const args = [
    '-m', 'pytest', ...plugin, '-p', 'no:cacheprovider', '-q', '-rfE', '-W', 'ignore::DeprecationWarning',
    `--junitxml=${junit}`, '-k', DESELECTED, ...extra, '--pyargs', ...modules,
  ]
  console.log(`running ipyparallel's tests against ${stock ? "ipyparallel's own controller" : 'our controller'}: ${modules.length} modules`)
  const code = await new Promise<number>((done) => {
    // The suite's temporary profiles live under cwd-independent temp dirs; run it from an empty directory.
    const child = spawn(python, args, { cwd: work, env, stdio: 'inherit' })
    child.on('exit', (c, signal) => done(c ?? (signal ? 1 : 0)))
    child.on('error', (e) => {
      console.error(`cannot run ${python}: ${e.message} (apt-get install python3-ipyparallel python3-pytest python3-pytest-asyncio python3-pytest-tornado)`)
      done(1)
    })
  })
  let outcomes: Outcome[] = []
  try {
    outcomes = parseJunit(readFileSync(junit, 'utf8'))
  } catch {
    console.error('pytest wrote no report')
  }
  rmSync(work, { recursive: true, force: true })
  const count = (r: Outcome['result']): number => outcomes.filter((o) => o.result === r).length
  for (const o of outcomes.filter((x) => x.result === 'failed')) console.log(`FAILED ${o.name}: ${o.message ?? ''}`)
  const failed = count('failed') + (code !== 0 && count('failed') === 0 ? 1 : 0)
  console.log(`compat: ${count('passed')} passed, ${failed} failed, ${count('skipped')} skipped, ${count('xfailed')} xfailed`)
  return failed === 0 ? 0 : 1
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2))
}
