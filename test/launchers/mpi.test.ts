// The mpi launcher for real with Open MPI's mpiexec (Debian's openmpi-bin): engines whose ids are their ranks,
// stopped together; as root, mpiexec refuses to run without Open MPI's opt-in, and the start says how to give it.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { Cluster } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { processAlive } from '../helpers/processes.js'

const mpiexec = spawnSync('mpiexec', ['--version'], { encoding: 'utf8' })
const unavailable = mpiexec.error ? `no mpiexec on PATH (apt-get install openmpi-bin): ${mpiexec.error.message}` : undefined
/** Running and not a zombie: ranks orphaned when mpiexec exits may wait as zombies for a reaper that is not theirs. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

const rootOptIn = { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' }

t.test('mpiexec starts 4 engines whose ids follow their ranks; stop ends the job', { skip: unavailable }, async (t) => {
  const cluster = await Cluster.start({ n: 4, engines: 'mpi', env: rootOptIn, timeoutMs: 60_000, log: silentLogger })
  t.teardown(() => cluster.stop())
  const client = await cluster.connect()
  t.same([...client.ids].sort(), [0, 1, 2, 3], 'four engines')
  const ranks = await client.directView([0, 1, 2, 3]).apply(() => Number(process.env.OMPI_COMM_WORLD_RANK))
  t.same(ranks, [0, 1, 2, 3], 'engine i is rank i')
  const pids = await client.directView([0, 1, 2, 3]).apply(() => process.pid)
  await cluster.stop()
  for (const pid of pids) t.notOk(running(pid), `engine process ${pid} has exited`)
})

t.test('as root without Open MPI\'s opt-in the start fails saying how to opt in, and leaves nothing', { skip: unavailable ?? (process.getuid?.() === 0 ? undefined : 'not root') }, async (t) => {
  const info: string[] = []
  const log = { ...silentLogger, info: (m: string) => info.push(m) }
  await t.rejects(Cluster.start({ n: 2, engines: 'mpi', env: { OMPI_ALLOW_RUN_AS_ROOT: '', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '' }, timeoutMs: 60_000, log }),
    /mpiexec refuses to run as root without Open MPI's opt-in: set OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1/)
  const controller = info.map((m) => /controller started, pid (\d+)/.exec(m)).find((m) => m)
  t.ok(controller, 'the controller had started')
  t.notOk(controller && processAlive(Number(controller[1])), 'and was stopped')
})
