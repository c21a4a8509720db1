// The ssh launcher's command lines, without ssh: what the remote shell runs and what ssh is given
// (test/launchers/ssh.test.ts runs them for real).
import t from 'tap'
import { remoteEngineCommand, shellQuote, sshArgv } from '../../src/cluster/launchers/ssh.js'

const settings = { env: {}, ssh: ['ssh'], node: 'node', path: '', engineScript: '/opt/jsparallel/bin/engine.js' }

t.test('shellQuote leaves plain words alone and single-quotes the rest, quotes inside included', async (t) => {
  t.equal(shellQuote('/opt/node-20/bin/node'), '/opt/node-20/bin/node')
  t.equal(shellQuote('--log-level=info'), '--log-level=info')
  t.equal(shellQuote('a b'), "'a b'")
  t.equal(shellQuote("it's $HOME"), "'it'\\''s $HOME'")
  t.equal(shellQuote(''), "''")
})

t.test('the remote command prints its pid, then execs the engine reading its connection from stdin', async (t) => {
  t.equal(remoteEngineCommand(settings, ['--uuid', 'u1']),
    'echo jsparallel-pid $$; exec env node /opt/jsparallel/bin/engine.js --file - --stdin-lifeline --uuid u1')
  t.equal(remoteEngineCommand({ ...settings, env: { A: 'x y', B: "it's" }, node: '/my node/node', path: '/work dir' }, []),
    "echo jsparallel-pid $$; cd '/work dir' && exec env 'A=x y' 'B=it'\\''s' '/my node/node' /opt/jsparallel/bin/engine.js --file - --stdin-lifeline")
})

t.test('ssh gets the user\'s options first (ssh keeps the first value), then BatchMode, no TTY, the host and the command', async (t) => {
  t.same(sshArgv({ ...settings, ssh: ['/usr/bin/ssh', '-i', 'key', '-o', 'BatchMode=no'] }, 'node7', 'true'), {
    file: '/usr/bin/ssh',
    args: ['-i', 'key', '-o', 'BatchMode=no', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', '-T', 'node7', 'true'],
  })
})
