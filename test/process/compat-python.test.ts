// The stock ipyparallel 7.1 (Debian's python3-ipyparallel: its Client and ipengine) against our controller.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { codeBlocks } from '../helpers/markdown.js'
import {
  processAlive, repoRoot, startController, startEngine, startProcess, startPythonEngine, systemPython, tempDir, type Teardown,
} from '../helpers/processes.js'

/** The line a Python script prints its JSON result after, so that stray output around it does not matter. */
const MARK = '@@RESULT@@ '

const missing = spawnSync(systemPython, ['-c', 'import ipyparallel'], { encoding: 'utf8' })
const pythonProblem = missing.status === 0
  ? undefined
  : `${systemPython} cannot import ipyparallel: install Debian's python3-ipyparallel (apt-get install python3-ipyparallel; .ci/run does this)\n${missing.stderr ?? String(missing.error)}`

/** Fails the test (never skips it) when the stock ipyparallel is not there. */
function requireIpyparallel(): void {
  if (pythonProblem) throw new Error(pythonProblem)
}

/**
 * Runs a Python script with /usr/bin/python3 and returns the JSON it printed after MARK. Fails with the script's
 * output if it exits non-zero, prints no result, or is still running after the ceiling.
 */
async function runPython(t: Teardown, script: string, args: string[], timeoutMs = 120_000): Promise<unknown> {
  const file = join(tempDir(t, 'jsparallel-py-'), 'script.py')
  writeFileSync(file, script)
  const proc = startProcess(t, systemPython, [file, ...args])
  let timer: NodeJS.Timeout | undefined
  const ceiling = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs)
  })
  const ended = await Promise.race([proc.exited, ceiling])
  clearTimeout(timer)
  if (ended === 'timeout') throw new Error(`the Python script did not finish within ${timeoutMs} ms; output:\n${proc.output()}`)
  if (ended.code !== 0) throw new Error(`the Python script exited with ${ended.code ?? ended.signal}; output:\n${proc.output()}`)
  const line = proc.output().split('\n').find((l) => l.startsWith(MARK))
  if (line === undefined) throw new Error(`the Python script printed no result; output:\n${proc.output()}`)
  return JSON.parse(line.slice(MARK.length))
}

/** Our client on `profileDir`, closed when the test ends. */
function ourClient(t: Teardown, profileDir: string): Client {
  const client = new Client({ profileDir, log: silentLogger })
  t.teardown(() => client.close())
  return client
}

t.test('the stock Python client runs apply and map on a stock ipengine through our controller', async (t) => {
  requireIpyparallel()
  const c = await startController(t)
  startPythonEngine(t, c.profileDir)
  const result = await runPython(t, `
import json, sys
import ipyparallel as ipp
rc = ipp.Client(profile_dir=sys.argv[1])
rc.wait_for_engines(1, timeout=60)
view = rc.load_balanced_view()
applied = view.apply_sync(lambda a, b: a + b, 1, 2)
mapped = view.map_sync(lambda x: x * x, range(10))
status = rc.queue_status()
rc.close()
print(${JSON.stringify(MARK)} + json.dumps({"ids": rc.ids, "apply": applied, "map": list(mapped), "unassigned": status["unassigned"]}))
`, [c.profileDir])
  t.same(result, { ids: [0], apply: 3, map: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81], unassigned: 0 })
})

t.test('broadcast views of the stock client, coalescing and not, reach every target engine once', async (t) => {
  requireIpyparallel()
  const c = await startController(t)
  const engines = [startPythonEngine(t, c.profileDir), startPythonEngine(t, c.profileDir), startPythonEngine(t, c.profileDir)]
  const result = await runPython(t, `
import json, os, sys
import ipyparallel as ipp
rc = ipp.Client(profile_dir=sys.argv[1])
rc.wait_for_engines(3, timeout=60)
ids = sorted(rc.ids)
out = {"ids": ids, "pid_of": [rc[i].apply_sync(os.getpid) for i in ids]}
for coalescing in (False, True):
    view = rc.broadcast_view(is_coalescing=coalescing)
    ar = view.apply_async(os.getpid)
    out[f"pids_{coalescing}"] = ar.get(timeout=60)
    out[f"engines_{coalescing}"] = ar.engine_id
    # a subset, in an order that is not the engines' own
    sub = rc.broadcast_view([ids[2], ids[0]], is_coalescing=coalescing)
    out[f"sub_{coalescing}"] = sub.apply_sync(os.getpid)
    try:
        view.apply_sync(lambda: 1 / 0)
        out[f"error_{coalescing}"] = "no error"
    except Exception as e:
        out[f"error_{coalescing}"] = type(e).__name__ + ": " + str(e)
    out[f"push_pull_{coalescing}"] = (view.push({"a": 5}, block=True), view.pull("a", block=True))[1]
status = rc.queue_status()
rc.close()
print(${JSON.stringify(MARK)} + json.dumps({**out, "unassigned": status["unassigned"]}))
`, [c.profileDir]) as Record<string, unknown>
  const ids = result.ids as number[]
  const pids = result.pid_of as number[]
  t.same([...pids].sort(), engines.map((e) => e.pid).sort(), 'the three ipengines')
  for (const coalescing of ['False', 'True']) {
    t.same(result[`engines_${coalescing}`], ids, `${coalescing}: one reply from every engine, in target order`)
    t.same(result[`pids_${coalescing}`], pids, `${coalescing}: each result came from its engine`)
    t.same(result[`sub_${coalescing}`], [pids[2], pids[0]], `${coalescing}: a subset in the order asked`)
    t.match(result[`error_${coalescing}`], /ZeroDivisionError/, `${coalescing}: an engine's error reaches the client`)
    t.same(result[`push_pull_${coalescing}`], [5, 5, 5], `${coalescing}: push then pull`)
  }
  t.equal(result.unassigned, 0)
})

t.test('a mixed cluster: 2 ipengines and 2 of ours, Python and JavaScript clients at once; each task on its language', async (t) => {
  requireIpyparallel()
  const c = await startController(t)
  const client = ourClient(t, c.profileDir)
  startEngine(t, c.profileDir)
  startEngine(t, c.profileDir)
  await client.waitForEngines(2, { timeoutMs: 60_000 })
  const jsIds = [...client.ids].sort()
  const pythons = [startPythonEngine(t, c.profileDir), startPythonEngine(t, c.profileDir)]
  await client.waitForEngines(4, { timeoutMs: 60_000 })
  const pyIds = client.ids.filter((id) => !jsIds.includes(id)).sort()

  // Both languages' tasks are in flight together: each must still go only to an engine of its language.
  const inputs = [...Array(40).keys()]
  const jsMap = client.loadBalancedView().map(async (x: number) => {
    await new Promise((resolve) => setTimeout(resolve, 10))
    return x * 2
  }, inputs, { chunksize: 1 })
  const pyRun = runPython(t, `
import json, os, sys, time
import ipyparallel as ipp
rc = ipp.Client(profile_dir=sys.argv[1])
rc.wait_for_engines(4, timeout=60)
view = rc.load_balanced_view()
def work(x):
    import os, time
    time.sleep(0.01)
    return x * 3, os.getpid()
ars = [view.apply_async(work, i) for i in range(40)]
out = []
for ar in ars:
    try:
        value, pid = ar.get(timeout=60)
        out.append({"value": value, "pid": pid, "engine_id": ar.metadata["engine_id"]})
    except Exception as e:
        out.append({"error": repr(e), "engine_id": ar.metadata["engine_id"]})
status = rc.queue_status()
rc.close()
print(${JSON.stringify(MARK)} + json.dumps({"results": out, "engines": sorted(k for k in status if k != "unassigned")}))
`, [c.profileDir]) as Promise<{ results: { value?: number; pid?: number; engine_id: number; error?: string }[]; engines: number[] }>

  t.same(await jsMap, inputs.map((x) => x * 2), 'every JavaScript result is right')
  t.ok(jsMap.metadata.every((m) => jsIds.includes(m.engineId as number)), 'every JavaScript task ran on one of our engines')
  const py = await pyRun
  t.same(py.results.map((r) => r.value), inputs.map((x) => x * 3), 'every Python result is right')
  t.ok(py.results.every((r) => pyIds.includes(r.engine_id) && pythons.some((p) => p.pid === r.pid)), 'every Python task ran on an ipengine')
  t.same(py.engines.sort(), [...jsIds, ...pyIds].sort(), "the Python client's queue_status sees all four engines")
  const records = await client.dbQuery({ queue: 'task' }, ['msg_id', 'engine_uuid'])
  t.equal(records.length, 80, 'the records hold the tasks of both clients')
  const ours = new Set(jsMap.msgIds)
  const jsEngines = new Set(jsMap.metadata.map((m) => m.engineUuid))
  t.equal(records.filter((r) => ours.has(r.msg_id)).length, 40)
  t.ok(records.every((r) => ours.has(r.msg_id) === jsEngines.has(r.engine_uuid ?? '')), 'each with the engine of its language that ran it')
})

t.test("the stock Python client's execute on our engine: Python code fails clearly (mux and task channels), JavaScript runs", async (t) => {
  requireIpyparallel()
  const c = await startController(t)
  startEngine(t, c.profileDir)
  const result = await runPython(t, `
import json, sys
import ipyparallel as ipp
from ipyparallel.client.asyncresult import AsyncResult
rc = ipp.Client(profile_dir=sys.argv[1])
rc.wait_for_engines(1, timeout=60)
def failure(run):
    try:
        run()
    except Exception as e:
        if hasattr(e, "elist"):
            ename, evalue = e.elist[0][0], e.elist[0][1]
        else:
            ename, evalue = getattr(e, "ename", type(e).__name__), getattr(e, "evalue", str(e))
        return {"ename": ename, "evalue": evalue}
    return None
out = {}
out["direct"] = failure(lambda: rc[0].execute("import numpy as np\\nx = np.arange(3)", block=True))
def load_balanced():
    fut = rc.send_execute_request(rc._task_socket, "def f(x):\\n    return x", metadata={"language": "javascript"})
    AsyncResult(rc, [fut], fname="execute").get(timeout=60)
out["task"] = failure(load_balanced)
reply = rc[0].execute("answer = 6 * 7", silent=False, block=True).get()
out["javascript"] = {"count": reply.execution_count, "text": reply.data.get("text/plain")}
rc.close()
print(${JSON.stringify(MARK)} + json.dumps(out))
`, [c.profileDir]) as Record<string, unknown>
  const clear = { ename: 'SyntaxError', evalue: /runs JavaScript.*ipengine/ }
  t.match(result.direct, clear, 'a DirectView execute of Python code is a SyntaxError that says the engine runs JavaScript')
  t.match(result.task, clear, 'and so is one sent load-balanced')
  t.same(result.javascript, { count: 1, text: '42' }, 'JavaScript code runs, its value is the execute_result')
  const client = ourClient(t, c.profileDir)
  await client.waitForEngines(1, { timeoutMs: 60_000 })
  t.equal(await client.directView(client.ids[0] as number).pull('answer'), 42, 'in the namespace our client reads')
})

t.test("the README's Python example runs against our controller and gives 3", async (t) => {
  requireIpyparallel()
  const [block, ...others] = codeBlocks(join(repoRoot, 'README.md'), 'python')
  if (block === undefined) throw new Error('README.md has no ```python block')
  t.equal(others.length, 0, 'one Python example in the README')
  const c = await startController(t)
  startPythonEngine(t, c.profileDir)
  // The example does not wait for an engine; let ours make sure the ipengine is there first.
  await ourClient(t, c.profileDir).waitForEngines(1, { timeoutMs: 60_000 })

  const example = block.code.replace(/profile_dir="[^"]*"/, `profile_dir=${JSON.stringify(c.profileDir)}`)
  t.not(example, block.code, 'the example names a profile_dir="..." to replace')
  // Run the example as a notebook cell would: its last expression's value is printed.
  const result = await runPython(t, `
import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
last = tree.body.pop()
assert isinstance(last, ast.Expr), "the example should end with an expression"
scope = {}
exec(compile(tree, "README.md", "exec"), scope)
value = eval(compile(ast.Expression(last.value), "README.md", "eval"), scope)
print(${JSON.stringify(MARK)} + json.dumps(value))
`, [writeExample(t, example)])
  t.equal(result, 3)
})

function writeExample(t: Teardown, code: string): string {
  const file = join(tempDir(t, 'jsparallel-readme-'), 'example.py')
  writeFileSync(file, code)
  return file
}

t.test('the stock Python client reads the task records: get_result, db_query, hub_history, resubmit, purge', async (t) => {
  requireIpyparallel()
  const c = await startController(t, ['--db=sqlite'])
  startPythonEngine(t, c.profileDir)
  const result = await runPython(t, `
import json, sys, datetime
import ipyparallel as ipp
rc = ipp.Client(profile_dir=sys.argv[1])
rc.wait_for_engines(1, timeout=60)
view = rc.load_balanced_view()
before = datetime.datetime.now(datetime.timezone.utc)
ars = [view.apply_async(lambda x: (print("hello", x), x * 10)[1], i) for i in range(3)]
values = [ar.get(timeout=60) for ar in ars]
ids = [ar.msg_ids[0] for ar in ars]
rc2 = ipp.Client(profile_dir=sys.argv[1])
fetched = rc2.get_result(ids).get(timeout=60)
recs = rc2.db_query({"msg_id": {"$in": ids}}, keys=["msg_id", "completed", "engine_uuid", "stdout"])
recent = rc2.db_query({"submitted": {"$gt": before}}, keys=["msg_id"])
again = rc2.resubmit(ids[:1])
again_value = again.get(timeout=60)
history = rc2.hub_history()
try:
    rc2.resubmit(["invalid"])
    bad = "no error"
except Exception as e:
    bad = type(e).__name__ + ":" + str(e)
rc2.purge_hub_results("all")
after_purge = rc2.hub_history()
status = rc2.queue_status()
rc.close(); rc2.close()
print(${JSON.stringify(MARK)} + json.dumps({
    "values": values, "fetched": fetched, "recs": len(recs),
    "completed_are_dates": all(isinstance(r["completed"], datetime.datetime) for r in recs),
    "stdout": sorted(r["stdout"].strip() for r in recs), "recent": len(recent),
    "again": again_value, "history": len(history), "bad": bad, "after_purge": after_purge, "unassigned": status["unassigned"]}))
`, [c.profileDir])
  t.match(result, {
    values: [0, 10, 20], fetched: [0, 10, 20], recs: 3, completed_are_dates: true,
    recent: 3, again: [0], history: 4, bad: /KeyError/, after_purge: [], unassigned: 0,
  })
  t.same((result as { stdout: string[] }).stdout.filter((s) => s.startsWith('hello')).length, 3, 'IOPub output in the records')
})

t.test('the ipp.Cluster example of docs/ipyparallel.md starts our controller and prints what the doc says', async (t) => {
  requireIpyparallel()
  const doc = join(repoRoot, 'docs', 'ipyparallel.md')
  const [block] = codeBlocks(doc, 'python')
  if (block === undefined) throw new Error('docs/ipyparallel.md has no ```python block')
  const promised = /^prints `([^`]+)`/m.exec(readFileSync(doc, 'utf8'))?.[1]
  if (promised === undefined) throw new Error('docs/ipyparallel.md does not say what the example prints')
  // Run it where a user would: a project with jsparallel in node_modules, and a fresh IPYTHONDIR.
  const project = tempDir(t, 'jsparallel-project-')
  mkdirSync(join(project, 'node_modules'))
  symlinkSync(repoRoot, join(project, 'node_modules', 'jsparallel'))
  const ipythonDir = tempDir(t, 'jsparallel-ipython-')
  writeFileSync(join(project, 'example.py'), block.code)
  // ipp.Cluster's controller and engines are the example's children; if it dies early they are ours to stop.
  t.teardown(() => {
    const security = join(ipythonDir, 'profile_default', 'security')
    for (const name of existsSync(security) ? readdirSync(security).filter((f) => /^cluster-.*\.json$/.test(f)) : []) {
      const info = JSON.parse(readFileSync(join(security, name), 'utf8')) as { controller?: { state?: { pid?: number } }; engines?: { sets?: Record<string, { state?: { pid?: number } }> } }
      const pids = [info.controller?.state?.pid, ...Object.values(info.engines?.sets ?? {}).map((s) => s.state?.pid)]
      for (const pid of pids) if (pid !== undefined && processAlive(pid)) process.kill(pid, 'SIGKILL')
    }
  })
  // `node` on the example's PATH notes its arguments, then becomes the real node: proof that ours was started.
  const shims = tempDir(t, 'jsparallel-shims-')
  const started = join(shims, 'started.txt')
  writeFileSync(join(shims, 'node'), `#!/bin/sh\necho "$@" >> ${started}\nexec ${process.execPath} "$@"\n`, { mode: 0o755 })
  const env = { IPYTHONDIR: ipythonDir, PATH: `${shims}:${process.env.PATH ?? ''}` }
  const proc = startProcess(t, systemPython, ['example.py'], { cwd: project, env })
  const ended = await Promise.race([proc.exited, new Promise<'timeout'>((resolve) => setTimeout(resolve, 120_000, 'timeout').unref())])
  if (ended === 'timeout' || ended.code !== 0) throw new Error(`the example did not finish cleanly (${ended === 'timeout' ? 'timeout' : ended.code}):\n${proc.output()}`)
  t.ok(proc.output().split('\n').includes(promised), `printed ${promised}:\n${proc.output()}`)
  t.match(readFileSync(started, 'utf8'), /^node_modules\/jsparallel\/bin\/controller\.js --profile-dir \S+ --cluster-id/m, 'the controller the launcher started was ours')
})
