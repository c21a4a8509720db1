// What `npm run test:compat` proves: the plugin's check of which controller each client reached, its per-test
// timeout, and the judgement of a run against the committed stock baseline.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import {
  BASELINE_FILE, formatBaseline, judge, parseBaseline, parseJunit, type Outcome,
} from '../../scripts/test-compat.js'
import { binPath, repoRoot, startProcess, systemPython, tempDir, type Teardown } from '../helpers/processes.js'

const outcome = (name: string, result: Outcome['result'], controllers: string[] = []): Outcome => ({ name, result, controllers, seconds: 1 })

t.test('parseJunit: a test that failed, then errored in teardown, is one failed test', async (t) => {
  const xml = '<testsuite><testcase classname="m.C" name="t" time="1"><failure message="boom" /></testcase>'
    + '<testcase classname="m.C" name="t" time="1"><error message="teardown" /></testcase>'
    + '<testcase classname="m.C" name="u" time="2"><properties><property name="controller" value="jsparallel" /></properties></testcase></testsuite>'
  t.match(parseJunit(xml), [
    { name: 'm.C::t', result: 'failed', message: 'boom; teardown' },
    { name: 'm.C::u', result: 'passed', controllers: ['jsparallel'], seconds: 2 },
  ])
  t.equal(parseJunit(xml).length, 2)
})

t.test('judge: passes count only when a client reached our controller', async (t) => {
  const v = judge([
    outcome('m::ours', 'passed', ['jsparallel']),
    outcome('m::no_controller', 'passed'),
    outcome('m::failed', 'failed', ['jsparallel']),
    outcome('m::skipped', 'skipped'),
  ], true)
  t.same([v.passed, v.failed, v.skipped, v.notCounted], [1, 1, 1, ['m::no_controller']])
  t.same(v.problems, [])
  t.equal(judge([outcome('m::stock', 'passed', ['ipyparallel'])], false).passed, 1, 'a stock run counts every pass')
})

t.test('judge: a module without a JUnit file is a failure', async (t) => {
  const v = judge([outcome('m::ours', 'passed', ['jsparallel'])], true, undefined, ['test_lbview'])
  t.equal(v.failed, 1)
  t.same(v.problems, ['test_lbview: pytest wrote no JUnit file (it crashed, was killed, or a test hung past the plugin\'s timeout)'])
})

t.test('judge against the baseline: a stock pass that fails, is skipped or is missing here fails the run', async (t) => {
  const baseline = parseBaseline(formatBaseline([
    outcome('m::a', 'passed', ['ipyparallel']),
    outcome('m::b', 'passed', ['ipyparallel']),
    outcome('m::c', 'passed', ['ipyparallel']),
    outcome('m::d', 'passed', ['ipyparallel']),
    outcome('m::e', 'failed', ['ipyparallel']),
    outcome('m::f', 'passed'),
  ], ['date: today']))
  t.same(baseline.get('m::a'), { result: 'passed', reachedController: true })
  t.same(baseline.get('m::f'), { result: 'passed', reachedController: false })
  const v = judge([
    outcome('m::a', 'passed', ['jsparallel']),
    outcome('m::b', 'failed', ['jsparallel']),
    outcome('m::c', 'skipped'),
    // m::d did not run
    outcome('m::e', 'passed', ['jsparallel']),
    outcome('m::f', 'passed'),
  ], true, baseline)
  t.same(v.problems, [
    '5 tests ran, fewer than the 6 of the baseline',
    'm::c: passes on stock, skipped here',
    'm::d: passes on stock, did not run here',
  ])
  t.equal(v.failed, 4, 'the failed test and the three problems')
  t.equal(v.passed, 2)
  t.same(v.notCounted, ['m::f'], 'a test that reached no controller on stock either: not counted, not a problem')
  t.same(v.betterThanStock, ['m::e (failed on stock)'])
})

t.test('judge against the baseline: a test its authors mark xfail may xfail here though it xpassed on stock', async (t) => {
  const baseline = parseBaseline(formatBaseline([outcome('m::racy', 'passed', ['ipyparallel'])], []))
  const v = judge([outcome('m::racy', 'xfailed')], true, baseline)
  t.same(v.problems, [])
  t.equal(v.failed, 0)
  t.same(v.expectedFailures, ['m::racy'])
})

t.test('judge against the baseline: a test that reached the stock controller must reach ours', async (t) => {
  const baseline = parseBaseline(formatBaseline([outcome('m::a', 'passed', ['ipyparallel'])], []))
  const v = judge([outcome('m::a', 'passed')], true, baseline)
  t.same(v.problems, ['m::a: reached the controller on stock, no controller of ours here'])
  t.equal(v.passed, 0)
})

t.test('the committed baseline lists the stock run with its date and versions', async (t) => {
  const text = readFileSync(BASELINE_FILE, 'utf8')
  t.match(text, /^# date: \d{4}-\d\d-\d\dT/m)
  t.match(text, /^# versions: python 3\.\S+, ipyparallel 7\.1\.\d+, pytest /m)
  const tests = parseBaseline(text)
  t.ok(tests.size > 250, `${tests.size} tests`)
  t.ok([...tests.values()].filter((e) => e.result === 'passed' && e.reachedController).length > 200, 'most passed and reached the controller')
})

// --- the plugin, on a small pytest module of our own -------------------------------------------------------

const haveIpyparallel = existsSync('/usr/lib/python3/dist-packages/ipyparallel')

/** Runs pytest with the plugin on `tests` (a Python module) and returns the JUnit outcomes, or undefined. */
async function runPlugin(t: Teardown, tests: string, options: string[]): Promise<{ outcomes: Outcome[] | undefined; output: string; code: number | null }> {
  const dir = tempDir(t, 'jsparallel-plugin-')
  writeFileSync(join(dir, 'test_scratch.py'), tests)
  const junit = join(dir, 'junit.xml')
  const proc = startProcess(t, systemPython, [
    '-m', 'pytest', '-p', 'ipp_jsparallel', '-p', 'no:cacheprovider', '-q', `--junitxml=${junit}`, ...options, 'test_scratch.py',
  ], {
    cwd: dir,
    env: {
      PYTHONDONTWRITEBYTECODE: '1',
      PYTHONPATH: join(repoRoot, 'test', 'compat'),
      IPP_TEST_CONTROLLER_CMD: `${process.execPath} ${binPath('controller')}`,
    },
  })
  let timer: NodeJS.Timeout | undefined
  const ceiling = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), 240_000)
  })
  const ended = await Promise.race([proc.exited, ceiling])
  clearTimeout(timer)
  if (ended === 'timeout') throw new Error(`pytest did not finish within 240 s; output:\n${proc.output()}`)
  const outcomes = existsSync(junit) ? parseJunit(readFileSync(junit, 'utf8')) : undefined
  return { outcomes, output: proc.output(), code: ended.code }
}

const CONTROLLERS = `
import os, shlex, subprocess, sys, time
import ipyparallel as ipp

def connect(command, tmp_path):
    """Starts a controller, connects a Client to it, and stops both."""
    proc = subprocess.Popen(command + [f"--profile-dir={tmp_path}", "--ip=127.0.0.1"])
    try:
        connection = tmp_path / "security" / "ipcontroller-client.json"
        deadline = time.monotonic() + 120
        while not connection.exists():
            assert proc.poll() is None, "the controller exited"
            assert time.monotonic() < deadline, "no connection file within 120 s"
            time.sleep(0.1)
        ipp.Client(str(connection), timeout=120).close()
    finally:
        proc.terminate()
        proc.wait(60)

def test_ours(tmp_path):
    connect(shlex.split(os.environ["IPP_TEST_CONTROLLER_CMD"]), tmp_path)

def test_stock(tmp_path):
    connect([sys.executable, "-m", "ipyparallel.controller"], tmp_path)

def start_cluster(tmp_path, command=None):
    """Starts and stops a Cluster's controller, with no Client."""
    from traitlets.config import Config
    config = Config()
    if command:
        config.LocalControllerLauncher.controller_cmd = command
    cluster = ipp.Cluster(profile_dir=str(tmp_path), config=config, controller_ip="127.0.0.1")
    cluster.start_controller_sync()
    cluster.stop_controller_sync()

def test_cluster_ours(tmp_path):
    start_cluster(tmp_path)

def test_cluster_stock(tmp_path):
    start_cluster(tmp_path, [sys.executable, "-m", "ipyparallel.controller"])

def test_identify_waits_for_exec(tmp_path):
    """A launcher returns once it has forked; the plugin must read the command line the child exec's."""
    import ipp_jsparallel
    command = shlex.split(os.environ["IPP_TEST_CONTROLLER_CMD"]) + [f"--profile-dir={tmp_path}"]
    pid = os.fork()
    if pid == 0:
        time.sleep(1)
        os.execv(command[0], command)
    try:
        assert ipp_jsparallel.identify_process(pid) == "jsparallel"
    finally:
        os.kill(pid, 15)
        os.waitpid(pid, 0)

def test_no_controller():
    assert ipp.__version__
`

t.test('the plugin names the controller each test reached, and fails a test whose client reached another', { skip: haveIpyparallel ? false : 'needs python3-ipyparallel' }, async (t) => {
  const { outcomes, output } = await runPlugin(t, CONTROLLERS, [])
  if (!t.ok(outcomes, 'a JUnit file')) t.comment(output)
  const byName = new Map((outcomes ?? []).map((o) => [o.name.replace(/^.*::/, ''), o]))
  t.match(byName.get('test_ours'), { result: 'passed', controllers: ['jsparallel'] })
  t.match(byName.get('test_stock'), {
    result: 'failed', controllers: ['ipyparallel'], message: /^NOT OUR CONTROLLER: a Client connected to tcp:\/\/127\.0\.0\.1:\d+: not our controller \(ipyparallel\)$/,
  })
  t.match(byName.get('test_cluster_ours'), { result: 'passed', controllers: ['jsparallel'] }, 'a Cluster\'s controller with no Client')
  t.match(byName.get('test_cluster_stock'), {
    result: 'failed', controllers: ['ipyparallel'], message: /^NOT OUR CONTROLLER: the controller process \d+ of a Cluster: not our controller \(ipyparallel\)$/,
  })
  t.match(byName.get('test_identify_waits_for_exec'), { result: 'passed' })
  t.match(byName.get('test_no_controller'), { result: 'passed', controllers: [] })
  if (!t.passing()) t.comment(output)
})

const HANGS = `
import time

def test_hangs():
    time.sleep(3600)

def test_next():
    pass
`

const STUBBORN = `
import time

def test_ignores_the_timeout():
    while True:
        try:
            time.sleep(3600)
        except BaseException:
            pass
`

t.test('a test still running at the timeout fails and the run goes on', { skip: haveIpyparallel ? false : 'needs python3-ipyparallel' }, async (t) => {
  const started = Date.now()
  const { outcomes, output } = await runPlugin(t, HANGS, ['--jsparallel-timeout=3'])
  t.ok(Date.now() - started < 120_000, 'well before the test\'s hour of sleep')
  t.match(outcomes, [
    { name: /test_hangs$/, result: 'failed', message: /CompatTimeout.*test_hangs still running after its timeout/ },
    { name: /test_next$/, result: 'passed' },
  ])
  if (!t.passing()) t.comment(output)
})

t.test('a test that swallows the timeout ends pytest, with tracebacks and without a JUnit file', { skip: haveIpyparallel ? false : 'needs python3-ipyparallel' }, async (t) => {
  const { outcomes, output, code } = await runPlugin(t, STUBBORN, ['--jsparallel-timeout=2', '--jsparallel-grace=2'])
  t.equal(code, 3)
  t.equal(outcomes, undefined)
  t.match(output, /COMPAT TIMEOUT: test_scratch.py::test_ignores_the_timeout still running 4(\.0)? s after it started/)
  t.match(output, /test_ignores_the_timeout/)
})
