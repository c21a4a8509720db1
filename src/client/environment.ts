/**
 * Every environment variable the client reads, and the only place in the library (outside the CLIs in `src/cli/`)
 * that reads `process.env`. A bare `new Client()` must find the cluster that `npx cluster start`, `npx cluster run`
 * or the CLIs set up, and those follow the same variables, as ipyparallel's client and apps do:
 *
 * - `IPYTHONDIR`: the directory of profiles, used when neither `profileDir` nor `ipythonDir` is given (then
 *   `~/.jsparallel`).
 * - `JSPARALLEL_PROFILE_DIR`: a profile directory, used when the options name no profile, profile directory,
 *   `ipythonDir` or connection file. `npx cluster run` sets it for the script it runs.
 * - `JSPARALLEL_CLUSTER_ID`: the cluster id that goes with `JSPARALLEL_PROFILE_DIR` (unless `clusterId` is given).
 *   `npx cluster run` sets it too.
 */
export interface ClientEnvironment {
  IPYTHONDIR: string | undefined
  JSPARALLEL_PROFILE_DIR: string | undefined
  JSPARALLEL_CLUSTER_ID: string | undefined
}

/** The variables `npx cluster run` sets for its script, so that a bare `new Client()` there finds its cluster. */
export function clusterRunEnvironment(profileDir: string, clusterId: string): Record<string, string> {
  return { JSPARALLEL_PROFILE_DIR: profileDir, JSPARALLEL_CLUSTER_ID: clusterId }
}

/** Reads the client's variables from `env` (the process's environment unless given). */
export function clientEnvironment(env: NodeJS.ProcessEnv = process.env): ClientEnvironment {
  return {
    IPYTHONDIR: env.IPYTHONDIR,
    JSPARALLEL_PROFILE_DIR: env.JSPARALLEL_PROFILE_DIR || undefined,
    JSPARALLEL_CLUSTER_ID: env.JSPARALLEL_CLUSTER_ID,
  }
}
