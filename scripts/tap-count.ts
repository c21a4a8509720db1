/**
 * Counts the tests of a tap run from the TAP stream its runner prints (`tap --reporter=tap`), for the closing
 * line of .ci/run: `node dist/scripts/tap-count.js < log` prints `N passed, N failed, N skipped`, or
 * `no TAP stream` and exits 1 if tap never reported. Lines that are not TAP (the build's, the lint's, a test's
 * stderr) are ignored, and so is a failure's YAML diagnostics: it is indented deeper than the block that
 * printed it, where no test point of that block can be.
 *
 * What counts as one test, so that the figure means the same as pytest's cases: a `t.test` block (or a test
 * file) that makes assertions of its own, or that has no subtests at all. A block with subtests and no
 * assertions of its own is only a group. A test fails if one of its own assertions fails; a block or file whose
 * own result is "not ok" while nothing inside it failed (a timeout, a crash, a missing plan) counts as one
 * failure. A skipped or todo subtest is one skipped test. The runner's own assertions (a file that timed out is
 * reported there) count like those of any block.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface TapCount {
  passed: number
  failed: number
  skipped: number
  /** Whether the stream had a test file in it: false when tap never started. */
  reported: boolean
}

interface Block {
  /** Indentation level (4 spaces each) of the block's own assertions. */
  level: number
  counts: TapCount
  subtests: number
  assertions: number
  assertionFailed: boolean
}

const POINT = /^( *)(ok|not ok)\b(.*)$/
const SUBTEST = /^( *)# Subtest\b/
const DIRECTIVE = /(?:^|[^\\])# (SKIP|TODO)\b/i

function newBlock(level: number): Block {
  return { level, counts: { passed: 0, failed: 0, skipped: 0, reported: true }, subtests: 0, assertions: 0, assertionFailed: false }
}

/** The block's tests, given the result of its own test point (true for "ok"). */
function tally(block: Block, ok: boolean): TapCount {
  const counts = { ...block.counts }
  if (block.assertions > 0 || block.subtests === 0) {
    if (block.assertionFailed) counts.failed++
    else counts.passed++
  }
  if (!ok && counts.failed === 0) {
    if (block.assertions > 0 || block.subtests === 0) counts.passed--
    counts.failed++
  }
  return counts
}

function add(into: TapCount, from: TapCount): void {
  into.passed += from.passed
  into.failed += from.failed
  into.skipped += from.skipped
}

export function countTap(text: string): TapCount {
  const root = newBlock(0)
  const stack: Block[] = [root]
  const top = (): Block => stack[stack.length - 1] as Block
  let reported = false
  /** Ends the innermost block with its own test point's result and adds its tests to its parent. */
  const close = (ok: boolean, skipped: boolean): void => {
    const block = stack.pop() as Block
    const parent = top()
    parent.subtests++
    if (skipped) parent.counts.skipped++
    else add(parent.counts, tally(block, ok))
  }

  for (const line of text.split(/\r?\n/)) {
    const subtest = line.match(SUBTEST)
    const point = line.match(POINT)
    const indent = (subtest ?? point)?.[1]?.length
    if (indent === undefined || indent % 4 !== 0) continue
    const level = indent / 4
    // Blocks deeper than this line never got their own test point: their output was cut (a killed file).
    while (stack.length > 1 && top().level > level + 1) close(false, false)
    if (subtest) {
      if (top().level === level + 1) close(false, false)
      if (top().level === level) {
        stack.push(newBlock(level + 1))
        reported = true
      }
      continue
    }
    const [, , status, rest] = point as RegExpMatchArray
    const ok = status === 'ok'
    const skipped = DIRECTIVE.test(rest ?? '')
    if (top().level === level + 1) {
      close(ok, skipped)
    } else if (top().level === level) {
      const block = top()
      if (skipped) {
        block.subtests++ // a skipped subtest prints only its test point
        block.counts.skipped++
      } else {
        block.assertions++
        if (!ok) block.assertionFailed = true
      }
    }
  }
  while (stack.length > 1) close(false, false)
  const counts = root.assertions > 0 ? tally(root, !root.assertionFailed) : { ...root.counts }
  return { ...counts, reported }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const counts = countTap(readFileSync(0, 'utf8'))
  if (counts.reported) {
    console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`)
  } else {
    console.log('no TAP stream')
    process.exitCode = 1
  }
}
