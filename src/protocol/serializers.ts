import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from '../common/errors.js'

/**
 * Classes that survive the trip (`registerSerializer`, also the `jsparallel/serializers` entry, which loads no
 * sockets so that modules engines import can use it). Structured clone sends a class instance as a plain object of
 * its own properties; an instance of a registered class travels instead as `{ '@jsparallel/class': name, data }`,
 * where `data` is what `encode` made of it, and the receiving side, if it knows the name, turns it back into an
 * instance with `decode`. The registry is kept on `globalThis` under a `Symbol.for` key, so that every copy of
 * this module loaded in one thread (the engine's own, and the one a user's module imports by another path)
 * shares it; each thread (each engine's executor) has its own.
 */

/** How instances of a class travel. */
export interface SerializerOptions<C extends object, D = unknown> {
  /** The name both sides know the class by; unique among registrations. */
  name: string
  /** Turns an instance into data that structured clone can send (it may hold other registered instances). */
  encode: (instance: C) => D
  /** Turns that data back into an instance. */
  decode: (data: D) => C
  /**
   * A module (a `file:` URL, `import.meta.url` of the module that registers the class, or a path) that makes the
   * same registration when imported. Given it, every task this process sends first imports it on its engine, so
   * engines know the class too. Without it, engines know the class only if a module they have imported registered it.
   */
  module?: string | URL
}

interface Entry {
  name: string
  Class: Function
  encode: (instance: never) => unknown
  decode: (data: never) => unknown
  module: string | undefined
}

interface Registry {
  byName: Map<string, Entry>
  byClass: Map<Function, Entry>
  /** Revives tagged instances in a value (in place where it can); used by the wrapper tasks carry to engines. */
  revive: (value: unknown) => unknown
}

/** The key marking a registered instance on the wire. */
export const CLASS_TAG = '@jsparallel/class'
const REGISTRY = Symbol.for('jsparallel.serializers')

function registry(): Registry {
  const g = globalThis as unknown as Record<symbol, Registry | undefined>
  return (g[REGISTRY] ??= { byName: new Map(), byClass: new Map(), revive: (value) => reviveRegistered(value) })
}

/**
 * Registers how instances of `Class` travel, so that they come back as instances of `Class` wherever the class is
 * registered under the same name: in this process, and on engines that imported `module` (or another module that
 * registers it). Instances of a subclass are not covered (register it too). Registering the same class again
 * replaces its serializer; another class under a taken name is refused.
 */
export function registerSerializer<C extends object, D = unknown>(Class: abstract new (...args: never[]) => C, options: SerializerOptions<C, D>): void {
  if (typeof Class !== 'function' || typeof Class.prototype !== 'object') throw new ConfigError('registerSerializer: the first argument must be a class (a constructor function)')
  if (typeof options !== 'object' || options === null) throw new ConfigError('registerSerializer: give { name, encode, decode } as the second argument')
  for (const key of Object.keys(options)) {
    if (!['name', 'encode', 'decode', 'module'].includes(key)) throw new ConfigError(`registerSerializer: unknown option '${key}' (options are name, encode, decode, module)`)
  }
  const { name, encode, decode } = options
  if (typeof name !== 'string' || name === '') throw new ConfigError('registerSerializer: name must be a non-empty string')
  if (typeof encode !== 'function') throw new ConfigError(`registerSerializer: encode of '${name}' must be a function from an instance to data`)
  if (typeof decode !== 'function') throw new ConfigError(`registerSerializer: decode of '${name}' must be a function from data to an instance`)
  const reg = registry()
  const taken = reg.byName.get(name)
  if (taken && taken.Class !== Class) throw new ConfigError(`registerSerializer: the name '${name}' is taken by class ${taken.Class.name || '(anonymous)'}; give ${Class.name || 'this class'} another name`)
  const previous = reg.byClass.get(Class)
  if (previous) reg.byName.delete(previous.name)
  const entry: Entry = { name, Class, encode, decode, module: options.module === undefined ? undefined : moduleUrl(options.module) }
  reg.byName.set(name, entry)
  reg.byClass.set(Class, entry)
}

/** Forgets every registration of this thread (for tests). */
export function clearSerializers(): void {
  const reg = registry()
  reg.byName.clear()
  reg.byClass.clear()
}

/** The modules of this thread's registrations, which tasks import on their engines first. */
export function serializerModules(): string[] {
  return [...new Set([...registry().byName.values()].flatMap((e) => (e.module === undefined ? [] : [e.module])))]
}

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href
  if (typeof module !== 'string' || module === '') throw new ConfigError('registerSerializer: module must be a file: URL (import.meta.url) or a path')
  if (module.startsWith('file:') || module.startsWith('node:')) return module
  return pathToFileURL(isAbsolute(module) ? module : resolve(module)).href
}

const isPlain = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

/**
 * `value` with each registered instance replaced by its tagged data: arrays, plain objects, Maps (values) and Sets
 * are searched and copied where something changed; the caller's value is never modified. Other objects (Dates,
 * typed arrays, unregistered class instances) are left as they are, and not searched.
 */
export function tagRegistered(value: unknown): unknown {
  const reg = registry()
  return reg.byClass.size === 0 ? value : tag(value, reg, new Map())
}

function tag(value: unknown, reg: Registry, seen: Map<object, unknown>): unknown {
  if (value === null || typeof value !== 'object') return value
  if (seen.has(value)) return seen.get(value)
  const entry = reg.byClass.get((value as { constructor?: Function }).constructor as Function)
  if (entry && Object.getPrototypeOf(value) === entry.Class.prototype) {
    const marker: Record<string, unknown> = { [CLASS_TAG]: entry.name }
    seen.set(value, marker)
    marker.data = tag(entry.encode(value as never), reg, seen)
    return marker
  }
  seen.set(value, value) // a cycle back to a container keeps the original
  let out: unknown = value
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined
    value.forEach((v: unknown, i) => {
      const t = tag(v, reg, seen)
      if (t !== v) (copy ??= value.slice())[i] = t
    })
    out = copy ?? value
  } else if (value instanceof Map) {
    const entries = [...value].map(([k, v]: [unknown, unknown]) => [k, tag(v, reg, seen)] as const)
    if (entries.some(([k, v]) => v !== value.get(k))) out = new Map(entries)
  } else if (value instanceof Set) {
    const items = [...value].map((v: unknown) => [v, tag(v, reg, seen)] as const)
    if (items.some(([v, t]) => v !== t)) out = new Set(items.map(([, t]) => t))
  } else if (isPlain(value)) {
    let copy: Record<string, unknown> | undefined
    for (const [k, v] of Object.entries(value)) {
      const t = tag(v, reg, seen)
      if (t !== v) (copy ??= { ...value })[k] = t
    }
    out = copy ?? value
  }
  seen.set(value, out)
  return out
}

/**
 * A decoded value with each tagged instance of a class registered here turned back into an instance (in place:
 * the value is fresh from the wire). Tags of names not registered here stay as they are.
 */
export function reviveRegistered(value: unknown): unknown {
  const reg = registry()
  return reg.byName.size === 0 ? value : revive(value, reg, new Set())
}

function revive(value: unknown, reg: Registry, seen: Set<object>): unknown {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value
  seen.add(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i], reg, seen)
  } else if (value instanceof Map) {
    for (const [k, v] of value) value.set(k, revive(v, reg, seen))
  } else if (value instanceof Set) {
    const items = [...value].map((v: unknown) => revive(v, reg, seen))
    value.clear()
    for (const item of items) value.add(item)
  } else if (isPlain(value)) {
    const record = value as Record<string, unknown>
    for (const [k, v] of Object.entries(record)) record[k] = revive(v, reg, seen)
    const name = record[CLASS_TAG]
    const entry = typeof name === 'string' ? reg.byName.get(name) : undefined
    if (entry && Object.hasOwn(record, 'data')) return entry.decode(record.data as never)
  }
  return value
}
