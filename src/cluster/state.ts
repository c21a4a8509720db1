/**
 * What a running cluster leaves under its profile, for `cluster list` and `cluster stop`: `pid/cluster[-<id>].json`
 * names the process that owns the cluster, the controller's and engines' pids and the engines' ids. The owner
 * rewrites it as engines come and go and removes it when it stops; a file whose owner is gone is stale.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomicSync } from '../common/atomic-file.js'

export interface ClusterState {
  profileDir: string
  clusterId: string
  /**
   * The process that started the cluster and stops it: a `cluster` command (which also leaves a `.pid` file beside
   * this one, for `cluster stop`) or a program using `Cluster`.
   */
  ownerPid: number
  launcher: string
  startedAt: string
  controller: { pid: number | undefined }
  /** `host` is there for engines on another host (their pid is theirs there). */
  engines: { id: number | undefined; pid: number | undefined; host?: string }[]
}

export function stateFilePath(profileDir: string, clusterId: string): string {
  return join(profileDir, 'pid', `cluster${clusterId ? `-${clusterId}` : ''}.json`)
}

export function writeClusterState(state: ClusterState): void {
  writeFileAtomicSync(stateFilePath(state.profileDir, state.clusterId), `${JSON.stringify(state, null, 2)}\n`, { fsync: false })
}

export function removeClusterState(profileDir: string, clusterId: string): void {
  rmSync(stateFilePath(profileDir, clusterId), { force: true })
}

/** The state files of one profile directory, parsed; unreadable ones are skipped. */
export function clusterStatesIn(profileDir: string): ClusterState[] {
  let names: string[]
  try {
    names = readdirSync(join(profileDir, 'pid'))
  } catch {
    return []
  }
  return names.filter((n) => /^cluster(-.*)?\.json$/.test(n)).flatMap((n) => {
    try {
      return [JSON.parse(readFileSync(join(profileDir, 'pid', n), 'utf8')) as ClusterState]
    } catch {
      return []
    }
  })
}

/** The state files of every `profile_*` directory under a base directory (`~/.jsparallel`, `$IPYTHONDIR`). */
export function clusterStatesUnder(baseDir: string): ClusterState[] {
  let names: string[]
  try {
    names = readdirSync(baseDir)
  } catch {
    return []
  }
  return names.filter((n) => n.startsWith('profile_')).sort().flatMap((n) => clusterStatesIn(join(baseDir, n)))
}
