import t from 'tap'
import { allocationFromEnv, distributeEngines, expandHostList, expandTasksPerNode, hostsFromList, mergeHosts, parseHostfile } from '../../src/cluster/hosts.js'
import { engineLauncher, controllerLauncher, availableEngineLaunchers } from '../../src/cluster/launchers/index.js'

const plain = (hosts: { host: string; slots: number | undefined }[]): [string, number | undefined][] => hosts.map((h) => [h.host, h.slots])

t.test('Slurm host lists expand, keeping zero padding', async (t) => {
  t.same(expandHostList('node[01-04,07]'), ['node01', 'node02', 'node03', 'node04', 'node07'])
  t.same(expandHostList('a[1-2],b3'), ['a1', 'a2', 'b3'])
  t.same(expandHostList('r[1-2]n[1-2]'), ['r1n1', 'r1n2', 'r2n1', 'r2n2'], 'several groups multiply')
  t.same(expandHostList('c[8-10]'), ['c8', 'c9', 'c10'])
  t.same(expandHostList('plain'), ['plain'])
})

t.test('bad host lists are refused saying what is wrong', async (t) => {
  t.throws(() => expandHostList('node[1-2', 'SLURM_JOB_NODELIST'), /SLURM_JOB_NODELIST: unbalanced '\['/)
  t.throws(() => expandHostList('node1-2]'), /unbalanced '\]'/)
  t.throws(() => expandHostList('node[4-1]'), /range '4-1' in 'node\[4-1\]' runs backwards/)
  t.throws(() => expandHostList('node[a-b]'), /'a-b' in 'node\[a-b\]' is not a number or a range/)
  t.throws(() => expandHostList('a,,b'), /empty host name/)
  t.throws(() => expandHostList('bad/name'), /'bad\/name' is not a host name/)
  t.throws(() => expandHostList('a,-oProxyCommand=x'), /'-oProxyCommand=x' is not a host name \(it starts with '-'\)/, 'ssh would take it for an option')
  t.throws(() => parseHostfile('-oProxyCommand=x 2\n', 'hosts.txt'), /starts with '-'/)
})

t.test('hostfiles: SCOOP host [n], MPI host slots=N, MPICH host:N, Slurm lists, comments and blank lines', async (t) => {
  const text = [
    '# our machines',
    'alpha 4',
    '',
    'beta            # cores: as many as it has',
    'gamma slots=2 max_slots=8',
    'delta:3',
    'node[01-02] 2',
    '   ',
  ].join('\n')
  const hosts = parseHostfile(text, 'hosts.txt')
  t.same(plain(hosts), [['alpha', 4], ['beta', undefined], ['gamma', 2], ['delta', 3], ['node01', 2], ['node02', 2]])
  t.same(hosts.map((h) => h.origin), ['hosts.txt:2', 'hosts.txt:4', 'hosts.txt:5', 'hosts.txt:6', 'hosts.txt:7', 'hosts.txt:7'], 'each host knows its line')
})

t.test('hostfile errors name the file, the line and what was wrong', async (t) => {
  t.throws(() => parseHostfile('alpha 4\nbeta 0\n', 'h'), /h:2: the engine count must be a whole number >= 1, got '0'/)
  t.throws(() => parseHostfile('alpha slots=x', 'h'), /h:1: slots must be a whole number >= 1, got 'x'/)
  t.throws(() => parseHostfile('alpha cpus=2 foo=1', 'h'), /h:1: unknown setting 'foo'/)
  t.throws(() => parseHostfile('alpha 2 3', 'h'), /h:1: unexpected '3' after the host name/)
  t.throws(() => parseHostfile('\n# nothing\n', 'h'), /h: no hosts in the hostfile/)
  t.throws(() => parseHostfile('ok\nnode[1-', 'h'), /h:2: unbalanced '\['/)
})

t.test('--host a a b is a with 2 and b with 1, in first-seen order', async (t) => {
  t.same(plain(hostsFromList(['a', 'a', 'b'])), [['a', 2], ['b', 1]])
  t.same(plain(hostsFromList(['n[1-2]', 'n1'])), [['n1', 2], ['n2', 1]])
})

t.test('a host on several lines adds up; open slots become its cores', async (t) => {
  t.same(plain(mergeHosts(parseHostfile('a 2\nb\na 1'), () => 8)), [['a', 3], ['b', 8]])
})

t.test("SCOOP's rules for -n against the hosts", async (t) => {
  const hosts = [{ host: 'a', slots: 4 }, { host: 'b', slots: 2 }, { host: 'c', slots: 2 }]
  t.same(distributeEngines(hosts), [{ host: 'a', engines: 4 }, { host: 'b', engines: 2 }, { host: 'c', engines: 2 }], 'no -n: each host its slots')
  t.same(distributeEngines(hosts, 5), [{ host: 'a', engines: 4 }, { host: 'b', engines: 1 }], 'fewer: filled host by host, later hosts left out')
  t.same(distributeEngines(hosts, 10), [{ host: 'a', engines: 5 }, { host: 'b', engines: 3 }, { host: 'c', engines: 2 }], 'more: the rest round-robin')
  t.same(distributeEngines(hosts, 17), [{ host: 'a', engines: 7 }, { host: 'b', engines: 5 }, { host: 'c', engines: 5 }])
  t.throws(() => distributeEngines([], 2), /no hosts/)
})

t.test('Slurm allocations: the node list, tasks per node and task count', async (t) => {
  t.same(expandTasksPerNode('2(x3),1'), [2, 2, 2, 1])
  t.throws(() => expandTasksPerNode('2(3)'), /'2\(3\)' is not N or N\(xM\)/)
  const slurm = allocationFromEnv({ SLURM_JOB_NODELIST: 'n[1-3]', SLURM_TASKS_PER_NODE: '2(x2),1', SLURM_NTASKS: '5' }, () => '')
  t.equal(slurm?.scheduler, 'slurm')
  t.same(plain(slurm?.hosts ?? []), [['n1', 2], ['n2', 2], ['n3', 1]])
  t.equal(slurm?.total, 5)
  const bare = allocationFromEnv({ SLURM_JOB_NODELIST: 'n[1-2]', SLURM_NTASKS: '4' }, () => '')
  t.same(distributeEngines(bare?.hosts ?? [], bare?.total), [{ host: 'n1', engines: 2 }, { host: 'n2', engines: 2 }], 'tasks spread over the nodes')
  t.throws(() => allocationFromEnv({ SLURM_JOB_NODELIST: 'n[1-2]', SLURM_TASKS_PER_NODE: '1' }, () => ''), /gives 1 counts for the 2 nodes/)
  t.throws(() => allocationFromEnv({ SLURM_JOB_NODELIST: 'n1', SLURM_NTASKS: 'many' }, () => ''), /SLURM_NTASKS: SLURM_NTASKS must be a whole number/)
})

t.test('SGE, PBS and LSF allocations read the files their variables name', async (t) => {
  const files: Record<string, string> = {
    '/sge/hosts': 'h1 4 all.q@h1 UNDEFINED\nh2 2 all.q@h2 UNDEFINED\n',
    '/pbs/nodes': 'p1\np1\np2\n',
    '/lsf/hosts': 'l1\nl2\nl2\n',
    '/sge/bad': 'h1\n',
  }
  const read = (path: string): string => {
    const text = files[path]
    if (text === undefined) throw new Error(`no file ${path}`)
    return text
  }
  const sge = allocationFromEnv({ PE_HOSTFILE: '/sge/hosts', NSLOTS: '6' }, read)
  t.same([sge?.scheduler, plain(sge?.hosts ?? []), sge?.total], ['sge', [['h1', 4], ['h2', 2]], 6])
  const pbs = allocationFromEnv({ PBS_NODEFILE: '/pbs/nodes', PBS_NP: '3' }, read)
  t.same([pbs?.scheduler, plain(pbs?.hosts ?? []), pbs?.total], ['pbs', [['p1', 2], ['p2', 1]], 3])
  const lsf = allocationFromEnv({ LSB_DJOB_HOSTFILE: '/lsf/hosts', LSB_HOSTS: 'ignored' }, read)
  t.same([lsf?.scheduler, plain(lsf?.hosts ?? [])], ['lsf', [['l1', 1], ['l2', 2]]])
  const lsbHosts = allocationFromEnv({ LSB_HOSTS: 'x y y' }, read)
  t.same(plain(lsbHosts?.hosts ?? []), [['x', 1], ['y', 2]])
  t.throws(() => allocationFromEnv({ PE_HOSTFILE: '/sge/bad' }, read), /PE_HOSTFILE \/sge\/bad:1: expected 'host slots queue processors'/)
  t.equal(allocationFromEnv({ HOME: '/root' }, read), undefined, 'no allocation outside a batch job')
})

t.test('launchers by name: local exists; planned and unknown names are refused naming the available ones', async (t) => {
  t.same(availableEngineLaunchers(), ['local', 'ssh', 'mpi'])
  t.equal(engineLauncher('local').name, 'local')
  t.equal(engineLauncher('ssh').name, 'ssh')
  t.equal(controllerLauncher('local').name, 'local')
  t.equal(engineLauncher('mpi').name, 'mpi')
  t.throws(() => engineLauncher('sge'), /engine launcher 'sge' is not available yet .*available: local, ssh, mpi/)
  t.throws(() => controllerLauncher('ssh'), /controller launcher 'ssh' is not available yet .*available: local/)
  t.throws(() => engineLauncher('toString'), /unknown engine launcher 'toString'; available: local, ssh, mpi/)
  t.throws(() => controllerLauncher('mpi'), /controller launcher 'mpi' is not available yet/)
})
