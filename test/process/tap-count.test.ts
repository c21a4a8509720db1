// .ci/run's count of tap tests (scripts/tap-count.ts): t.test blocks, as pytest counts cases, with skips kept.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { countTap } from '../../scripts/tap-count.js'
import { repoRoot } from '../helpers/processes.js'

/** The runner's stream for one file with a pass, a throw, a skip, a todo, nesting and a failure's YAML. */
const ONE_FILE = `
> jsparallel@0.1.0 test
> npm run build && npm run lint && tap 'dist/test/**/*.test.js'
TAP version 14
1..1
# Subtest: dist/test/a.test.js
    # Subtest: passes
        ok 1 - should be equal
        ok 2 - should be equal
        1..2
    ok 1 - passes # time=36.209ms

    # Subtest: throws
        ok 1 - should be equal
        not ok 2 - boom
          ---
          source: |
            ok 3 - a line of source inside the diagnostics
            # Subtest: not one either
          ...

        1..2
    not ok 2 - throws # time=418.3ms
      ---
      at:
        lineNumber: 3
      ...

    ok 3 - skipped # SKIP no reason
    ok 4 - todo # TODO
    # Subtest: nested
        # Subtest: inner
            ok 1 - should be equal
            1..1
        ok 1 - inner # time=14.249ms

        ok 2 - outer
        1..2
    ok 5 - nested # time=47.689ms
    # Subtest: only groups
        # Subtest: one
            ok 1 - fine
            1..1
        ok 1 - one
        # Subtest: two
            ok 1 - fine
            1..1
        ok 2 - two
        1..2
    ok 6 - only groups
    1..6
    # time=635.902ms
not ok 1 - dist/test/a.test.js # time=635.902ms
  ---
  exitCode: 1
  ...

# No coverage generated
# { total: 11, pass: 8, fail: 1, todo: 1, skip: 1 }
`

t.test('each t.test block with assertions of its own is one test; skips and todos are skipped tests', async (t) => {
  // passes, throws (failed), skipped, todo, inner, nested's own "outer", one, two
  t.same(countTap(ONE_FILE), { passed: 5, failed: 1, skipped: 2, reported: true })
})

t.test('a file killed by the timeout, whose output was lost, is one failure; a file closed by the runner\'s "timeout!" too', async (t) => {
  const text = `TAP version 14
1..2
# Subtest: dist/test/hangs.test.js
    1..0 # no tests found
not ok 1 - dist/test/hangs.test.js # time=5853.913ms
  ---
  signal: SIGALRM
  ...

# Subtest: dist/test/b.test.js
    ok 1 - top level
    # Subtest: fails
        not ok 1 - should be equal
        not ok 2 - test unfinished
        1..2
    not ok 2 - fails # time=250.568ms
    1..2
not ok 2 - timeout!
  ---
  expired: dist/test/hangs.test.js
  ...
`
  // hangs.test.js (failed); b's own assertion (passed); fails (failed). The runner's "timeout!" is b's own
  // point (as tap 21 printed it), not another failure: b already has one inside.
  t.same(countTap(text), { passed: 1, failed: 2, skipped: 0, reported: true })
})

t.test('output cut inside a subtest counts that subtest as failed', async (t) => {
  const text = `1..1
# Subtest: dist/test/crash.test.js
    # Subtest: first
        ok 1 - fine
        1..1
    ok 1 - first
    # Subtest: crashes
        ok 1 - started
`
  t.same(countTap(text), { passed: 1, failed: 1, skipped: 0, reported: true })
})

t.test('a failing point with nothing failed inside counts once; with a failure inside, not again', async (t) => {
  const text = `1..2
# Subtest: dist/test/plan.test.js
    # Subtest: plan
        ok 1 - fine
        1..2
    not ok 1 - plan
    1..1
not ok 1 - dist/test/plan.test.js
# Subtest: dist/test/fine.test.js
    ok 1 - fine
    1..1
ok 2 - dist/test/fine.test.js
`
  t.same(countTap(text), { passed: 1, failed: 1, skipped: 0, reported: true })
})

t.test('no TAP at all (the build or the lint failed first) is not a report', async (t) => {
  const text = `> tsc -p tsconfig.json\nsrc/x.ts(1,1): error TS1005: ';' expected.\nok so far\n`
  t.equal(countTap(text).reported, false)
  const cli = spawnSync(process.execPath, [join(repoRoot, 'dist', 'scripts', 'tap-count.js')], { input: text, encoding: 'utf8' })
  t.equal(cli.status, 1)
  t.equal(cli.stdout.trim(), 'no TAP stream')
})

t.test('the command prints the line .ci/run reads', async (t) => {
  const cli = spawnSync(process.execPath, [join(repoRoot, 'dist', 'scripts', 'tap-count.js')], { input: ONE_FILE, encoding: 'utf8' })
  t.equal(cli.status, 0)
  t.equal(cli.stdout, '5 passed, 1 failed, 2 skipped\n')
})
