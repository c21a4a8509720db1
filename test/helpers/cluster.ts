import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { startController, startEngine, type Proc, type RunningController, type Teardown } from './processes.js'

export interface TestCluster extends RunningController {
  engines: Proc[]
  client: Client
}

/** A controller of ours, `n` engines of ours and a connected client, all stopped when the test ends. */
export async function startCluster(t: Teardown, n: number, controllerArgs: string[] = []): Promise<TestCluster> {
  const controller = await startController(t, controllerArgs)
  const engines = Array.from({ length: n }, () => startEngine(t, controller.profileDir))
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(n, { timeoutMs: 60_000 })
  return { ...controller, engines, client }
}
