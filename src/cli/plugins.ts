import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from '../common/errors.js'
import type { Scheme } from '../schedulers/schemes.js'

/**
 * Imports a scheme plugin: a module whose default export maps scheme names to functions
 * `(loads, random) => index` (docs/schedulers.md), for the controller's `schemes` option.
 */
export async function loadSchemePlugin(specifier: string, cwd: string): Promise<Record<string, Scheme>> {
  const url = specifier.startsWith('file:') ? specifier : pathToFileURL(isAbsolute(specifier) ? specifier : resolve(cwd, specifier)).href
  let module: { default?: unknown }
  try {
    module = (await import(url)) as { default?: unknown }
  } catch (e) {
    throw new ConfigError(`could not import the scheme plugin ${specifier}: ${(e as Error).message}`, { cause: e })
  }
  const schemes = module.default
  if (schemes === null || typeof schemes !== 'object' || Object.keys(schemes).length === 0) {
    throw new ConfigError(`scheme plugin ${specifier} must have a default export { name: (loads, random) => index }`)
  }
  const loaded: Record<string, Scheme> = {}
  for (const [name, scheme] of Object.entries(schemes)) {
    if (typeof scheme !== 'function') throw new ConfigError(`scheme plugin ${specifier}: '${name}' is not a function (loads, random) => index`)
    loaded[name] = scheme as Scheme
  }
  return loaded
}
