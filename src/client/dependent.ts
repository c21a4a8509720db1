import { ConfigError } from '../common/errors.js'
import type { FunctionDescriptor, RequiredModule } from '../protocol/payload.js'
import { describeFunction, wrappedFunction, type ModuleFunction, type WrappedFunction } from './functions.js'

/** Anything that can be a task: a function, a module reference, or an already wrapped task. */
type Taskable<F extends (...args: never[]) => unknown> = F | ModuleFunction<F> | WrappedFunction<F>

/**
 * Functional dependencies (ipyparallel's `depend`, `require`, `dependent`): conditions an engine checks before it
 * runs a task. A task whose condition does not hold there fails on that engine with `UnmetDependency`, and the
 * scheduler gives it to another engine; when no engine is left it fails with `ImpossibleDependency`.
 */

/**
 * A decorator: the task runs only on engines where `check(...args)` is truthy (it may return a promise). The
 * check travels like a task function; `args` must be JSON values (strings, numbers, plain objects, arrays).
 * A check that throws counts as unmet on that engine.
 *
 *     const onLinux = depend((p) => process.platform === p, 'linux')(task)
 */
export function depend<C extends (...args: never[]) => unknown>(check: Taskable<C>, ...args: Parameters<C>): <F extends (...args: never[]) => unknown>(fn: Taskable<F>) => WrappedFunction<F> {
  const checkDescriptor = describeCheck(check)
  const wire = jsonArgs(args)
  return <F extends (...args: never[]) => unknown>(fn: Taskable<F>) =>
    wrappedFunction<F>({ kind: 'dependent', fn: describeFunction(fn), check: checkDescriptor, args: wire })
}

/** `depend(check, ...args)(fn)` in one call. */
export function dependent<F extends (...args: never[]) => unknown, C extends (...args: never[]) => unknown>(fn: Taskable<F>, check: Taskable<C>, ...args: Parameters<C>): WrappedFunction<F> {
  return depend(check, ...args)(fn)
}

/**
 * A decorator: the task runs only on engines where every module can be imported, and a task sent as source sees
 * each module under a name: the specifier's last part in camelCase (`mathjs` → `mathjs`, `node:path` → `path`,
 * `@scope/pkg-name` → `pkgName`), or the key you give (`requires({ m: 'mathjs' })`). The binding is the module's
 * default export when it has one (a CommonJS module's `module.exports`), else its namespace. Bare names are
 * resolved from the engine's working directory, as `require` would.
 *
 *     const withMath = requires('mathjs')((x) => mathjs.sqrt(x))
 */
export function requires(...modules: (string | Record<string, string>)[]): <F extends (...args: never[]) => unknown>(fn: Taskable<F>) => WrappedFunction<F> {
  const list: RequiredModule[] = []
  for (const item of modules) {
    if (typeof item === 'string') list.push({ name: bindingName(item), specifier: item })
    else if (typeof item === 'object' && item !== null) {
      for (const [name, specifier] of Object.entries(item)) {
        if (typeof specifier !== 'string' || specifier === '') throw new ConfigError(`requires: the module for '${name}' must be a specifier string, not ${JSON.stringify(specifier)}`)
        if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new ConfigError(`requires: '${name}' is not a JavaScript identifier to bind ${specifier} to`)
        list.push({ name, specifier })
      }
    } else {
      throw new ConfigError(`requires: expected module specifiers (strings) or { name: specifier }, not ${JSON.stringify(item)}`)
    }
  }
  if (list.length === 0) throw new ConfigError('requires: name at least one module')
  return <F extends (...args: never[]) => unknown>(fn: Taskable<F>) => wrappedFunction<F>({ kind: 'requires', fn: describeFunction(fn), modules: list })
}

/** The identifier a specifier is bound to: its last path part, without scope or extension, in camelCase. */
export function bindingName(specifier: string): string {
  if (typeof specifier !== 'string' || specifier === '') throw new ConfigError(`requires: a module specifier must be a non-empty string, not ${JSON.stringify(specifier)}`)
  const last = specifier.replace(/^node:/, '').split('/').filter((p) => p !== '').at(-1) ?? ''
  const base = last.replace(/\.(c|m)?js$/, '')
  const camel = base.replace(/[-_.]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase()).replace(/[^\w$]/g, '')
  const name = /^[0-9]/.test(camel) ? `_${camel}` : camel
  if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new ConfigError(`requires: cannot derive a name for '${specifier}'; give one: requires({ name: '${specifier}' })`)
  return name
}

function describeCheck(check: unknown): FunctionDescriptor {
  if (typeof check !== 'function' && (typeof check !== 'object' || check === null)) {
    throw new ConfigError(`depend: the check must be a function (or a moduleFunction reference), not ${check === null ? 'null' : typeof check}`)
  }
  return describeFunction(check)
}

function jsonArgs(args: readonly unknown[]): unknown[] {
  const text = JSON.stringify(args, (_key, value: unknown) => {
    if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint' || value === undefined) {
      throw new ConfigError(`depend: the check's arguments travel as JSON; ${typeof value} values cannot (pass strings, numbers, booleans, null, arrays or plain objects)`)
    }
    return value
  })
  return JSON.parse(text) as unknown[]
}
