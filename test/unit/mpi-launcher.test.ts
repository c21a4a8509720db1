// The mpi launcher's mpiexec command line, without mpiexec (test/launchers/mpi.test.ts runs it for real).
import t from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { mpiexecArgs } from '../../src/cluster/launchers/mpi.js'

const settings = { env: {}, ssh: ['ssh'], node: 'node', path: '', engineScript: '' }
const spec = (uuid: string) => ({ profileDir: '/p', clusterId: 'c', log: silentLogger, uuid, host: 'localhost', args: ['--log-level=info'], logFile: '/p/log/e.log', settings })

t.test('one application context per engine, each with its uuid and --mpi, joined by ":"', async (t) => {
  t.same(mpiexecArgs([spec('u0'), spec('u1')], '/usr/bin/node', '/x/bin/engine.js'), [
    '--oversubscribe',
    '-n', '1', '/usr/bin/node', '/x/bin/engine.js', '--mpi', '--profile-dir', '/p', '--cluster-id', 'c', '--uuid', 'u0', '--log-level=info',
    ':',
    '-n', '1', '/usr/bin/node', '/x/bin/engine.js', '--mpi', '--profile-dir', '/p', '--cluster-id', 'c', '--uuid', 'u1', '--log-level=info',
  ])
})
