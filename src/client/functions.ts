import { isAbsolute } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from '../common/errors.js'
import { encodeApply, findUncloneable, type FunctionDescriptor } from '../protocol/payload.js'
import { serializerModules } from '../protocol/serializers.js'

/**
 * How a task's function travels (docs/protocol.md, buffer 0): its source text, a module export that engines
 * import, or a well-known global looked up by path. Everything that cannot travel is refused here, before
 * anything is sent, with a message that says what to write instead.
 */

const MODULE_FUNCTION = Symbol.for('jsparallel.moduleFunction')

/**
 * A reference to an exported function of a module, made by {@link moduleFunction}. It is not callable here:
 * pass it to `apply`, `map` or `parallel` where a function is expected. `F` is the function's type, so results
 * are typed: `moduleFunction<typeof heavy>(url, 'heavy')`.
 */
export interface ModuleFunction<F extends (...args: never[]) => unknown = (...args: unknown[]) => unknown> {
  readonly [MODULE_FUNCTION]: true
  /** Absolute `file:` URL (or `node:` specifier) that engines `import()`. */
  readonly module: string
  /** Name of the export. */
  readonly export: string
  /** Type-level only: the function's type. */
  readonly __type?: F
}

/**
 * Names a function by its module and export, for functions that use imports or other module-level names.
 * Engines `import()` the module, so it must exist at the same path on the engines' machines.
 * @param moduleUrl a `file:` URL, a `node:` specifier, or a file path (relative paths resolve against the current
 *   directory; prefer `new URL('./work.js', import.meta.url)`).
 * @param exportName the export to call (`'default'` for a default export).
 */
export function moduleFunction<F extends (...args: never[]) => unknown = (...args: unknown[]) => unknown>(
  moduleUrl: string | URL,
  exportName: string,
): ModuleFunction<F> {
  if (typeof exportName !== 'string' || exportName === '') throw new ConfigError('moduleFunction: exportName must be a non-empty string')
  return Object.freeze({ [MODULE_FUNCTION]: true as const, module: moduleSpecifier(moduleUrl), export: exportName })
}

function isModuleFunction(value: unknown): value is ModuleFunction {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MODULE_FUNCTION] === true
}

function moduleSpecifier(moduleUrl: string | URL): string {
  const text = moduleUrl instanceof URL ? moduleUrl.href : moduleUrl
  if (typeof text !== 'string' || text === '') throw new ConfigError('moduleFunction: moduleUrl must be a path, a file: URL or a node: specifier')
  if (text.startsWith('node:')) return text
  if (text.startsWith('file:')) {
    try {
      return new URL(text).href
    } catch (e) {
      throw new ConfigError(`moduleFunction: '${text}' is not a valid file URL`, { cause: e })
    }
  }
  // A Windows drive letter looks like a URL scheme; anything else with a scheme is not importable by engines.
  if (/^[a-z][a-z0-9+.-]+:/i.test(text) && !isAbsolute(text)) {
    throw new ConfigError(`moduleFunction: '${text}' must be a file path, a file: URL or a node: specifier`)
  }
  return pathToFileURL(text).href
}

const WRAPPED_FUNCTION = Symbol.for('jsparallel.wrappedFunction')

/**
 * A task function with conditions the engine checks before running it, made by `depend`, `dependent` or
 * `requires`. Not callable here: pass it to `apply`, `map` or `parallel`. `F` is the wrapped function's type.
 */
export interface WrappedFunction<F extends (...args: never[]) => unknown = (...args: unknown[]) => unknown> {
  readonly [WRAPPED_FUNCTION]: true
  /** How the engine finds the function and its conditions. */
  readonly descriptor: FunctionDescriptor
  /** Type-level only: the function's type. */
  readonly __type?: F
}

export function wrappedFunction<F extends (...args: never[]) => unknown>(descriptor: FunctionDescriptor): WrappedFunction<F> {
  return Object.freeze({ [WRAPPED_FUNCTION]: true as const, descriptor })
}

function isWrappedFunction(value: unknown): value is WrappedFunction {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[WRAPPED_FUNCTION] === true
}

/** The task function's descriptor, or a ConfigError saying why it cannot travel and what to do instead. */
export function describeFunction(fn: unknown): FunctionDescriptor {
  if (isModuleFunction(fn)) return { kind: 'module', module: fn.module, export: fn.export }
  if (isWrappedFunction(fn)) return fn.descriptor
  if (typeof fn !== 'function') {
    throw new ConfigError(`the task must be a function or a moduleFunction(url, name) reference, not ${fn === null ? 'null' : typeof fn}`)
  }
  const known = wellKnownGlobals().get(fn)
  if (known !== undefined) return { kind: 'global', path: known }
  const name = fn.name
  if (name.startsWith('bound ')) {
    const target = name.slice('bound '.length)
    throw new ConfigError(
      `${target ? `function '${target}'` : 'the function'} is bound (fn.bind(…)); what it is bound to cannot travel: ` +
        'pass those values as arguments of an arrow or function expression instead',
    )
  }
  const label = name ? `function '${name}'` : 'the anonymous function'
  const source = Function.prototype.toString.call(fn)
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    throw new ConfigError(
      `${label} is native code; native functions other than well-known globals (Math.*, JSON.*, Number.*, parseInt, …) cannot travel: ` +
        'wrap the call in an arrow function that engines can run, or use a module reference, moduleFunction(url, name)',
    )
  }
  if (/^class\b/.test(source)) {
    throw new ConfigError(`${name ? `class '${name}'` : 'the class'} cannot be a task: pass a function (an arrow or function expression, or moduleFunction(url, name))`)
  }
  if (!parsesAsExpression(source)) {
    throw new ConfigError(
      `${label} is written as a method (\`${name || 'name'}(…) { … }\`), which engines cannot evaluate on its own: ` +
        `write it as an arrow or function expression (\`${name || 'name'}: (…) => …\`), or use moduleFunction(url, name)`,
    )
  }
  return { kind: 'source', source, name }
}

/** Compiles (never calls) the source as an expression: method shorthand and accessors do not parse. */
function parsesAsExpression(source: string): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- compiled to check syntax, never called
    new Function(`return (${source}\n)`)
    return true
  } catch (e) {
    // Code generation may be disabled (--disallow-code-generation-from-strings): then we cannot tell; let it go.
    return !(e instanceof SyntaxError)
  }
}

const GLOBAL_ROOTS = ['Math', 'JSON', 'Number', 'String', 'Object', 'Array', 'Date', 'BigInt', 'Reflect', 'Boolean', 'Promise', 'Atomics'] as const
const GLOBAL_FUNCTIONS = [
  'parseInt', 'parseFloat', 'isNaN', 'isFinite', 'encodeURIComponent', 'decodeURIComponent', 'encodeURI', 'decodeURI',
  'escape', 'unescape', 'structuredClone', 'atob', 'btoa', 'Number', 'String', 'Boolean', 'BigInt',
] as const

let globalsByFunction: Map<Function, string> | undefined

/** Function → path for the well-known globals engines can look up (built once; first path wins). */
function wellKnownGlobals(): Map<Function, string> {
  if (globalsByFunction) return globalsByFunction
  const table = new Map<Function, string>()
  const g = globalThis as unknown as Record<string, unknown>
  for (const name of GLOBAL_FUNCTIONS) {
    const value = g[name]
    if (typeof value === 'function' && !table.has(value)) table.set(value, name)
  }
  for (const root of GLOBAL_ROOTS) {
    const owner = g[root]
    if (owner === null || (typeof owner !== 'object' && typeof owner !== 'function')) continue
    for (const key of Object.getOwnPropertyNames(owner)) {
      const value = Object.getOwnPropertyDescriptor(owner, key)?.value as unknown
      if (typeof value === 'function' && key !== 'prototype' && !table.has(value) && /^[A-Za-z_$][\w$]*$/.test(key)) {
        table.set(value, `${root}.${key}`)
      }
    }
  }
  globalsByFunction = table
  return table
}

/**
 * The engine resolves exactly one function per task, so a map chunk travels as a source wrapper that embeds how
 * to find the user's function (its source; an `import()` of its module; its global path) and calls it once per
 * element. The task's single argument is the chunk: with one input iterable, its elements (each the function's
 * only argument); with `inputs` > 1, argument lists. The first element to throw fails the chunk. If any call
 * returned a promise (an async function), the chunk waits for all of them, so they overlap; otherwise the results
 * go back as they are, with no promise per element.
 */
export function chunkDescriptor(fn: FunctionDescriptor, inputs: number): FunctionDescriptor {
  // Conditions hold per engine, so they are checked once per chunk, around the chunk's loop.
  if (fn.kind === 'dependent' || fn.kind === 'requires') return { ...fn, fn: chunkDescriptor(fn.fn, inputs) }
  const find = functionExpression(fn)
  const name = functionName(fn)
  const call = inputs === 1 ? '(x) => f(x)' : '(args) => f(...args)'
  const source = [
    'async (chunk) => {',
    `const f = ${find};`,
    `const out = chunk.map(${call});`,
    "return out.some((r) => typeof r?.then === 'function') ? Promise.all(out) : out;",
    '}',
  ].join('\n')
  return { kind: 'source', source, name }
}

/** Source of an expression (inside an async function) that evaluates to the function a descriptor names. */
function functionExpression(fn: Exclude<FunctionDescriptor, { kind: 'dependent' | 'requires' }>): string {
  return fn.kind === 'source' ? `(${fn.source}\n)`
    : fn.kind === 'module' ? `(await import(${JSON.stringify(fn.module)}))[${JSON.stringify(fn.export)}]`
    : `(...a) => ${fn.path}(...a)` // a path from our own table of identifiers, so it is safe to embed
}

/**
 * With serializers registered with a `module` (registerSerializer), a task first imports those modules on its
 * engine, so the engine's executor knows the classes: the arguments are then revived as instances (tagged ones
 * that arrived before the import), and instances in the result are tagged on the way back. Conditions of
 * `dependent`/`requires` stay outside, as for a map chunk. Without such serializers, the descriptor is unchanged.
 */
export function withSerializerModules(fn: FunctionDescriptor): FunctionDescriptor {
  const modules = serializerModules()
  if (modules.length === 0) return fn
  if (fn.kind === 'dependent' || fn.kind === 'requires') return { ...fn, fn: withSerializerModules(fn.fn) }
  const source = [
    'async (...args) => {',
    `for (const m of ${JSON.stringify(modules)}) await import(m);`,
    "const registry = globalThis[Symbol.for('jsparallel.serializers')];",
    `const f = ${functionExpression(fn)};`,
    'return f(...(registry ? registry.revive(args) : args));',
    '}',
  ].join('\n')
  return { kind: 'source', source, name: functionName(fn) }
}

/** The name shown for a function: its own, its export's, its global path, or the wrapped function's. */
export function functionName(fn: FunctionDescriptor): string {
  switch (fn.kind) {
    case 'source':
      return fn.name
    case 'module':
      return fn.export
    case 'global':
      return fn.path
    case 'dependent':
    case 'requires':
      return functionName(fn.fn)
  }
}

/**
 * Buffers of an apply_request. If structured clone refuses an argument, throws a ConfigError naming the part that
 * could not travel, e.g. `argument args[1].callback is a function (callback): pass data, …`.
 */
export function encodeTask(fn: FunctionDescriptor, args: readonly unknown[]): Buffer[] {
  try {
    return encodeApply(withSerializerModules(fn), args)
  } catch (e) {
    throw refusal('argument', args, 'args', e)
  }
}

/**
 * Buffers of one map chunk (`items[i]` is input `start + i`: a value if the map has one input iterable, else an
 * argument list); a refusal names the input: `map input inputs[0][3].callback is a function …` (iterable 0,
 * position 3).
 */
export function encodeChunk(fn: FunctionDescriptor, items: readonly unknown[], start: number, inputs: number): Buffer[] {
  try {
    return encodeApply(withSerializerModules(fn), [items])
  } catch (e) {
    for (const [i, item] of items.entries()) {
      const values = inputs === 1 ? [item] : (item as readonly unknown[])
      for (const [j, value] of values.entries()) {
        const found = findUncloneable(value, `inputs[${j}][${start + i}]`)
        if (found) throw refusalMessage(`map input ${found.path}`, found.what, e)
      }
    }
    throw refusal('map input', items, 'chunk', e)
  }
}

function refusal(label: string, value: unknown, root: string, cause: unknown): ConfigError {
  const found = findUncloneable(value, root)
  if (!found) return new ConfigError(`${label} could not be serialised: ${(cause as Error).message}`, { cause })
  return refusalMessage(`${label} ${found.path}`, found.what, cause)
}

function refusalMessage(subject: string, what: string, cause: unknown): ConfigError {
  const advice = what.startsWith('a function')
    ? 'pass data, not functions; functions can only be the task itself'
    : 'only structured-cloneable data can travel (primitives, plain objects, arrays, Map, Set, Date, RegExp, typed arrays, errors)'
  return new ConfigError(`${subject} is ${what}: ${advice}`, { cause })
}
