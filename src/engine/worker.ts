/**
 * The executor thread: user code runs here, never on the engine's main thread, so a task that spins the CPU
 * cannot silence heartbeats, and the engine can end a task for real by terminating this thread.
 * Started by executor.ts; speaks worker-protocol.ts.
 */
import { Console } from 'node:console'
import { createRequire } from 'node:module'
import { Writable } from 'node:stream'
import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { inspect } from 'node:util'
import { parentPort } from 'node:worker_threads'
import { compileCode } from './evaluate.js'
import { decodeApply, encodeValue, findUncloneable, type FunctionDescriptor } from '../protocol/payload.js'
import { asBuffer, packFrames, type FromWorker, type OutputStream, type TaskError, type ToWorker } from './worker-protocol.js'

if (!parentPort) throw new Error('src/engine/worker.js is the executor thread of an engine; it is not run directly')
const port = parentPort
const cwdRequire = createRequire(pathToFileURL(`${process.cwd()}/`))

/** The task running now, if any, and the last one started (stray output is charged to it). */
let current: number | undefined
let last = 0

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer)
}

/** A stream whose every write becomes an output message of the current task, in order. */
class CaptureStream extends Writable {
  constructor(private readonly stream: OutputStream) {
    super({ decodeStrings: false })
  }

  override _write(chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8')
    post({ type: 'output', seq: current ?? last, name: this.stream, text })
    callback()
  }
}

function captureOutput(): void {
  const stdout = new CaptureStream('stdout')
  const stderr = new CaptureStream('stderr')
  // A Console over the capture streams formats exactly as console does (util.format), without colours, and
  // routes each method (log/info/debug to stdout, error/warn/trace to stderr) the way the global one does.
  const captured = new Console({ stdout, stderr, colorMode: false })
  const target = console as unknown as Record<string, unknown>
  for (const [name, method] of Object.entries(captured as unknown as Record<string, unknown>)) {
    if (typeof method === 'function') target[name] = method
  }
  // Raw writes (libraries that bypass console) are task output too.
  const redirect = (into: CaptureStream) => ((chunk: unknown, encoding?: unknown, callback?: unknown): boolean =>
    into.write(chunk, encoding as BufferEncoding, callback as () => void)) as typeof process.stdout.write
  process.stdout.write = redirect(stdout)
  process.stderr.write = redirect(stderr)
}

/** Functions sent as source, compiled once per source text (and names bound by `requires`). */
const compiled = new Map<string, Function>()
// An indirect eval compiles in the global scope: the function sees globals, nothing of this module.
const globalEval = eval

/** A task's condition does not hold here; the engine's reply then says `dependencies_met: false`. */
class UnmetDependency extends Error {
  override name = 'UnmetDependency'
}
// Tasks sent as source refer to it by name: `throw new UnmetDependency('not here')`.
;(globalThis as Record<string, unknown>).UnmetDependency = UnmetDependency

/** Names in scope of a source function besides globals: the modules of `requires`. */
type Bindings = ReadonlyMap<string, unknown>
const NO_BINDINGS: Bindings = new Map()

async function resolveFunction(fn: FunctionDescriptor, bindings: Bindings = NO_BINDINGS): Promise<Function> {
  switch (fn.kind) {
    case 'source':
      return compileSource(fn.source, fn.name, bindings)
    case 'module': {
      const mod = (await import(fn.module)) as Record<string, unknown>
      const value = mod[fn.export]
      if (typeof value !== 'function') throw new TypeError(`module ${fn.module} has no exported function '${fn.export}'`)
      return value
    }
    case 'global': {
      let owner: unknown
      let value: unknown = globalThis
      for (const key of fn.path.split('.')) {
        owner = value
        value = value === null || value === undefined ? undefined : (value as Record<string, unknown>)[key]
      }
      if (typeof value !== 'function') throw new TypeError(`the global '${fn.path}' is not a function on this engine`)
      // Keep the receiver: `Array.from` and friends need `this`.
      const method = value
      return (...args: unknown[]): unknown => Reflect.apply(method, owner, args)
    }
    case 'dependent': {
      const check = await resolveFunction(fn.check, bindings)
      const task = await resolveFunction(fn.fn, bindings)
      const name = fn.check.kind === 'source' && fn.check.name ? fn.check.name : 'the check'
      return async (...args: unknown[]): Promise<unknown> => {
        let holds: unknown
        try {
          holds = await (check as (...a: unknown[]) => unknown)(...fn.args)
        } catch (e) {
          throw new UnmetDependency(`${name} threw on this engine: ${e instanceof Error ? e.message : String(e)}`)
        }
        if (!holds) throw new UnmetDependency(`${name}(${fn.args.map((a) => JSON.stringify(a)).join(', ')}) is false on this engine`)
        return (task as (...a: unknown[]) => unknown)(...args)
      }
    }
    case 'requires': {
      const more = new Map(bindings)
      for (const { name, specifier } of fn.modules) more.set(name, await importRequired(specifier))
      return resolveFunction(fn.fn, more)
    }
  }
}

/** Compiles a function sent as source, once per source text and set of bound names. */
function compileSource(source: string, name: string, bindings: Bindings): Function {
  const names = [...bindings.keys()]
  const key = names.length === 0 ? source : `${names.join(',')}\0${source}`
  let f = compiled.get(key)
  if (!f) {
    // An indirect eval (or a Function) compiles in the global scope: the function sees globals and the bound
    // modules, nothing of this file.
    const value: unknown = names.length === 0
      ? globalEval(`(${source}\n)`)
      // eslint-disable-next-line @typescript-eslint/no-implied-eval -- running sent source is what an engine is for
      : (new Function(...names, `return (${source}\n)`) as (...a: unknown[]) => unknown)(...bindings.values())
    if (typeof value !== 'function') throw new TypeError(`the source sent for ${name || 'the task'} is not a function expression`)
    f = value
    compiled.set(key, f)
  }
  return f
}

/**
 * Imports a module a task requires, or fails the task with UnmetDependency. Bare names resolve from the
 * engine's working directory (as `require` would); the binding is the default export when there is one.
 */
async function importRequired(specifier: string): Promise<unknown> {
  let target = specifier
  try {
    if (specifier.startsWith('.') || isAbsolute(specifier)) target = pathToFileURL(resolve(process.cwd(), specifier)).href
    else if (!specifier.startsWith('node:') && !specifier.includes(':')) {
      try {
        target = pathToFileURL(cwdRequire.resolve(specifier)).href
      } catch {
        // ESM-only packages may not resolve for require; let import() try.
      }
    }
    const ns = (await import(target)) as Record<string, unknown>
    return 'default' in ns && ns.default !== undefined ? ns.default : ns
  } catch (e) {
    throw new UnmetDependency(`module '${specifier}' cannot be imported on this engine: ${e instanceof Error ? e.message : String(e)}`)
  }
}

const hint =
  ' (the function was sent as source text, so it cannot see variables of the module it was written in; ' +
  "pass the value as an argument or send a module reference: moduleFunction(import.meta.url, 'name'))"

function describe(thrown: unknown, fn: FunctionDescriptor | undefined): TaskError {
  const isError = thrown instanceof Error || (typeof thrown === 'object' && thrown !== null && typeof (thrown as Error).message === 'string')
  if (!isError) return { ename: 'Error', evalue: `a non-Error value was thrown: ${inspect(thrown)}`, traceback: [] }
  const error = thrown as Error
  const ename = typeof error.name === 'string' ? error.name : 'Error'
  let evalue = error.message
  if (fn?.kind === 'source' && ename === 'ReferenceError' && / is not defined$/.test(evalue)) evalue += hint
  const stack = typeof error.stack === 'string' ? error.stack : `${ename}: ${error.message}`
  const traceback = stack
    .split('\n')
    // Code sent as source shows as `eval at resolveFunction (…worker.js…), <anonymous>:L:C`: name it for what it is.
    .map((line) => line.replace(/\(eval at .*?, <anonymous>:(\d+):(\d+)\)/, '(<task source>:$1:$2)'))
    // Frames of this file and of Node's internals are the engine's, not the user's.
    .filter((line) => !line.includes(import.meta.url) && !line.includes('(node:internal/'))
  return { ename, evalue, traceback }
}

/** The result's frames, or the reason it cannot be sent back. */
function encodeResult(result: unknown): { frames: Buffer[] } | { error: TaskError } {
  try {
    return { frames: encodeValue(result) }
  } catch (e) {
    const found = findUncloneable(result, 'result')
    const evalue = found
      ? `the task's result cannot be sent back: ${found.path} is ${found.what}`
      : `the task's result cannot be sent back: ${(e as Error).message}`
    return { error: { ename: 'DataCloneError', evalue, traceback: [] } }
  }
}

function finish(seq: number, outcome: { frames: Buffer[]; text?: string } | { error: TaskError }): void {
  // An uncaught exception may already have failed this task; its late result is dropped.
  if (current !== seq) return
  current = undefined
  if ('error' in outcome) {
    post({ type: 'failed', seq, error: outcome.error })
    return
  }
  try {
    // Frame 0 is the serializer's own buffer; the rest are views of the task's data, which must stay intact.
    const { views, transfer } = packFrames(outcome.frames, (index) => index === 0)
    post(outcome.text === undefined ? { type: 'done', seq, frames: views } : { type: 'done', seq, frames: views, text: outcome.text }, transfer)
  } catch (e) {
    post({ type: 'failed', seq, error: { ename: 'DataCloneError', evalue: `the result could not be handed to the engine: ${(e as Error).message}`, traceback: [] } })
  }
}

async function run(seq: number, frames: Uint8Array[]): Promise<void> {
  current = seq
  last = seq
  let fn: FunctionDescriptor | undefined
  let outcome: { frames: Buffer[] } | { error: TaskError }
  try {
    const decoded = decodeApply(frames.map(asBuffer))
    fn = decoded.fn
    const f = await resolveFunction(fn)
    const result: unknown = await (f as (...args: unknown[]) => unknown)(...decoded.args)
    outcome = encodeResult(result)
  } catch (e) {
    outcome = { error: describe(e, fn) }
  }
  finish(seq, outcome)
}

/** Execute requests run so far; names each one's code in stack traces (`<execute 3>:1:7`). */
let executions = 0

const notPython =
  ' (this engine runs JavaScript (jsparallel): execute takes JavaScript source; run Python code on an ipengine)'

/**
 * An execute_request: JavaScript source run in this thread's global scope (evaluate.ts). Its value, when it has
 * one, comes back with its inspection; a value that cannot be cloned (a function, say) comes back as text alone.
 */
async function execute(seq: number, code: string): Promise<void> {
  current = seq
  last = seq
  let outcome: { frames: Buffer[]; text?: string } | { error: TaskError }
  try {
    const compiled = compileCode(code, `<execute ${++executions}>`)
    const value: unknown = compiled.awaits ? await compiled.run() : compiled.run()
    outcome = value === undefined ? { frames: [] } : { frames: cloneOrNothing(value), text: inspect(value) }
  } catch (e) {
    const error = describe(e, undefined)
    // A declaration made twice is plainly JavaScript; any other syntax error may be Python code sent here.
    if (error.ename === 'SyntaxError' && !/has already been declared/.test(error.evalue)) error.evalue += notPython
    outcome = { error: { ...error, traceback: error.traceback.filter((line) => !line.includes('(node:vm:') && !line.includes(evaluateUrl)) } }
  }
  finish(seq, outcome)
}

const evaluateUrl = new URL('./evaluate.js', import.meta.url).href

function cloneOrNothing(value: unknown): Buffer[] {
  try {
    return encodeValue(value)
  } catch {
    return []
  }
}

// A throw from a timer or an unawaited promise would end the thread; it fails the running task instead,
// or is reported as stderr output when no task runs.
process.on('uncaughtException', (error) => {
  if (current !== undefined) {
    finish(current, { error: describe(error, undefined) })
    return
  }
  post({ type: 'output', seq: last, name: 'stderr', text: `uncaught exception after the task ended: ${inspect(error)}\n` })
})

captureOutput()
// Source functions may `require` packages, resolved from the engine's working directory.
;(globalThis as Record<string, unknown>).require = cwdRequire
port.on('message', (message: ToWorker) => {
  void (message.type === 'run' ? run(message.seq, message.frames) : execute(message.seq, message.code))
})
post({ type: 'ready' })
