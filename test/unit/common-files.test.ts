import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { writeFileAtomicSync } from '../../src/common/atomic-file.js'
import { waitForFiles } from '../../src/common/wait-for-files.js'

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'jsparallel-files-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('an atomic write replaces the file whole, with the mode asked for, and leaves no temporary file', async (t) => {
  const dir = scratch(t)
  const path = join(dir, 'key.json')
  writeFileSync(path, 'old', { mode: 0o644 })
  writeFileAtomicSync(path, '{"key":"new"}', { mode: 0o600 })
  t.equal(readFileSync(path, 'utf8'), '{"key":"new"}')
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.same(readdirSync(dir), ['key.json'])
})

t.test('waitForFiles resolves true once every file exists', async (t) => {
  const dir = scratch(t)
  const [a, b] = [join(dir, 'a'), join(dir, 'b')]
  writeFileSync(a, '')
  const waiting = waitForFiles([a, b], { timeoutMs: 60_000, pollMs: 10 })
  setTimeout(() => writeFileSync(b, ''), 50)
  t.equal(await waiting, true)
})

t.test('waitForFiles resolves false when the time is up', async (t) => {
  const dir = scratch(t)
  t.equal(await waitForFiles([join(dir, 'never')], { timeoutMs: 50, pollMs: 10 }), false)
})

t.test('waitForFiles resolves false as soon as giveUp says so, long before its timeout', async (t) => {
  const dir = scratch(t)
  let looks = 0
  const started = Date.now()
  t.equal(await waitForFiles([join(dir, 'never')], { timeoutMs: 60_000, pollMs: 10, giveUp: () => ++looks >= 3 }), false)
  t.equal(looks, 3)
  t.ok(Date.now() - started < 30_000, 'stopped early')
})
