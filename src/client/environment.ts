/**
 * Every environment variable the client reads, and the only place in the library (outside the CLIs in `src/cli/`)
 * that reads `process.env`. A bare `new Client()` must find the cluster that `npx cluster start` or the CLIs set up,
 * and those follow the same variables, as ipyparallel's client and apps do:
 *
 * - `IPYTHONDIR`: the directory of profiles, used when neither `profileDir` nor `ipythonDir` is given (then
 *   `~/.jsparallel`).
 */
export interface ClientEnvironment {
  IPYTHONDIR: string | undefined
}

/** Reads the client's variables from `env` (the process's environment unless given). */
export function clientEnvironment(env: NodeJS.ProcessEnv = process.env): ClientEnvironment {
  return { IPYTHONDIR: env.IPYTHONDIR }
}
