/**
 * How an engine runs the JavaScript source of an execute_request, in the executor thread's global scope, like a
 * line of Node's REPL: the code's value is its last expression statement's, and `await` is allowed at the top.
 */
import { constants, Script } from 'node:vm'

/** Runs the compiled code once; its value, or a promise of it when the code awaits at the top. */
export interface CompiledCode {
  run(): unknown
  /** Whether `run` returns a promise of the value (top-level await) rather than the value itself. */
  readonly awaits: boolean
}

// `import()` inside executed code loads modules as the engine's own imports would.
const importModuleDynamically = constants.USE_MAIN_CONTEXT_DEFAULT_LOADER

/**
 * Compiles `code` as a script of the global scope: its `var` and function declarations become properties of
 * `globalThis` and its `const`/`let`/`class` declarations stay in the global scope for later code, as in a browser
 * console. Code that awaits at the top level cannot be a script; it runs as the body of an async function instead,
 * so what it declares is its own (assign a global, `globalThis.x = await f()` or `x = await f()`, to keep it).
 * Throws the script's SyntaxError when the code is not JavaScript.
 */
export function compileCode(code: string, filename: string): CompiledCode {
  let scriptError: unknown
  try {
    const script = new Script(code, { filename, importModuleDynamically })
    return { run: (): unknown => script.runInThisContext({ displayErrors: false }) as unknown, awaits: false }
  } catch (e) {
    scriptError = e
  }
  const body = code.includes('await') ? asyncBody(code) : undefined
  if (body === undefined) throw awaitingError(code, scriptError, filename) ?? scriptError
  // One line before the body keeps the user's line numbers in stack traces.
  const script = new Script(`(async function () {\n${body}\n})`, { filename, lineOffset: -1, importModuleDynamically })
  const f = script.runInThisContext({ displayErrors: false }) as () => Promise<unknown>
  return { run: () => f(), awaits: true }
}

/**
 * When code that awaits at the top level has another syntax error, the script's complaint is about the `await`;
 * the async function's says what is wrong.
 */
function awaitingError(code: string, scriptError: unknown, filename: string): unknown {
  if (!(scriptError instanceof SyntaxError) || !/await/.test(scriptError.message)) return undefined
  try {
    new Script(`(async function () {\n${code}\n})`, { filename, lineOffset: -1 })
  } catch (e) {
    return e
  }
  return undefined
}

const DECLARATION = /^\s*(?:async\s+function|function|class)\b/

/**
 * The body of an async function that runs `code` and returns the value of its last statement when that is an
 * expression; undefined if `code` is not even a valid async function body. The last statement is found by asking
 * the parser: the earliest place after a `;`, `}` or line break where what follows is one expression and what
 * precedes is a whole list of statements (earliest, since `a\n(b)` is the single call `a(b)`).
 */
function asyncBody(code: string): string | undefined {
  if (!compiles(`(async function () {\n${code}\n})`)) return undefined
  for (const at of splitPoints(code)) {
    const tail = code.slice(at).replace(/[\s;]+$/, '')
    if (tail.trim() === '' || DECLARATION.test(tail)) continue
    if (!compiles(`(async function () { return (${tail}\n) })`)) continue
    const body = `${code.slice(0, at)}return (${tail}\n)`
    if (compiles(`(async function () {\n${body}\n})`)) return body
  }
  return code
}

function* splitPoints(code: string): Generator<number> {
  yield 0
  for (let i = 0; i < code.length; i++) {
    const c = code[i]
    if (c === ';' || c === '}' || c === '\n') yield i + 1
  }
}

function compiles(source: string): boolean {
  try {
    new Script(source)
    return true
  } catch {
    return false
  }
}
