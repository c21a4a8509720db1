import { existsSync } from 'node:fs'
import type { Logger } from '../common/log.js'
import {
  CLIENT_KEYS, ENGINE_KEYS, connectionFilePath, readConnectionFile, type ClientConnectionInfo, type EngineConnectionInfo,
} from '../protocol/connection-file.js'
import {
  bindPort, createPublisher, createRouter, createSubscriber, type AnySocket, type Curve, type Dealer, type Publisher, type Router, type Subscriber,
} from '../transport/sockets.js'

/** The controller's sockets besides the task channel's (which the channel makes). */
export interface ControllerSockets {
  registration: Router
  notification: Publisher
  hbPing: Publisher
  hbPong: Router
  muxClient: Router
  muxEngine: Router
  controlClient: Router
  controlEngine: Router
  iopubEngine: Subscriber
  iopubClient: Publisher
  broadcastClient: Router
  broadcastEngine: Router
}

/** Every socket the controller binds besides the task channel's; with `curve`, each is a CURVE server. */
export function createSockets(curve: Curve | undefined): ControllerSockets {
  return {
    registration: createRouter({ curve }),
    notification: createPublisher({ curve }),
    hbPing: createPublisher({ curve }),
    hbPong: createRouter({ curve }),
    muxClient: createRouter({ routingId: 'mux_in', mandatory: true, curve }),
    // Engine-facing ROUTERs refuse to drop messages for unknown peers, so nothing is lost silently.
    muxEngine: createRouter({ routingId: 'mux_out', mandatory: true, curve }),
    controlClient: createRouter({ routingId: 'control_in', curve }),
    controlEngine: createRouter({ routingId: 'control_out', mandatory: true, curve }),
    iopubEngine: createSubscriber({ curve }),
    iopubClient: createPublisher({ curve }),
    broadcastClient: createRouter({ routingId: 'sub_scheduler_0', curve }),
    broadcastEngine: createRouter({ routingId: 'sub_scheduler_00', curve }),
  }
}

/**
 * Every socket of `s` by the name its logs and dropped-message counts use (a receiving socket's name is its
 * channel's).
 */
export function namedSockets(s: ControllerSockets): [string, AnySocket][] {
  return [
    ['registration', s.registration], ['notification', s.notification], ['heartbeat (ping)', s.hbPing], ['heartbeat', s.hbPong],
    ['mux', s.muxClient], ['mux (engines)', s.muxEngine], ['control', s.controlClient], ['control (engines)', s.controlEngine],
    ['iopub', s.iopubEngine], ['iopub (clients)', s.iopubClient], ['broadcast', s.broadcastClient], ['broadcast (engines)', s.broadcastEngine],
  ]
}

/** Every socket of `s`, to close. */
export function allSockets(s: ControllerSockets): AnySocket[] {
  return namedSockets(s).map(([, socket]) => socket)
}

/** The connection files a previous controller of this profile left. */
export interface PreviousFiles {
  client: ClientConnectionInfo
  engine: EngineConnectionInfo
}

/** The connection files a previous controller of this profile left (`--reuse`), if both are there and readable. */
export function previousFiles(profileDir: string, clusterId: string, log: Logger): PreviousFiles | undefined {
  const clientFile = connectionFilePath(profileDir, 'client', clusterId)
  const engineFile = connectionFilePath(profileDir, 'engine', clusterId)
  if (!existsSync(clientFile) || !existsSync(engineFile)) {
    log.info('--reuse: no previous connection files; binding fresh ports')
    return undefined
  }
  return { client: readConnectionFile<ClientConnectionInfo>(clientFile, CLIENT_KEYS), engine: readConnectionFile<EngineConnectionInfo>(engineFile, ENGINE_KEYS) }
}

/** Where and how to bind, and what the connection files say besides the ports. */
export interface BindPlan {
  ip: string
  /** Registration port; 0 = from `ports`, else a free one. */
  registrationPort: number
  /** Ports to bind, taken in order; then free ones. */
  ports: readonly number[]
  previous: PreviousFiles | undefined
  key: string
  curveServerKey: string | null
  location: string
  scheme: string
}

/**
 * Binds every channel and returns the two connection files' contents. With `--reuse` each channel binds the port
 * it had, so peers that keep reconnecting find it again.
 */
export async function bindChannels(s: ControllerSockets, task: { client: Router; engine: Router | Dealer }, plan: BindPlan): Promise<{ clientInfo: ClientConnectionInfo; engineInfo: EngineConnectionInfo }> {
  const iface = `tcp://${plan.ip}`
  const pool = [...plan.ports]
  const port = (sock: AnySocket, was: number | undefined): Promise<number> => bindPort(sock, iface, was ?? pool.shift() ?? 0)
  const c = plan.previous?.client
  const e = plan.previous?.engine
  const registration = await port(s.registration, plan.registrationPort || c?.registration || undefined)
  const base = { ssh: '', interface: iface, registration, key: plan.key, curve_serverkey: plan.curveServerKey, location: plan.location, pack: 'json', unpack: 'json', signature_scheme: 'hmac-sha256' }
  const clientInfo: ClientConnectionInfo = {
    ...base, control: await port(s.controlClient, c?.control), mux: await port(s.muxClient, c?.mux), task: await port(task.client, c?.task),
    task_scheme: plan.scheme, iopub: await port(s.iopubClient, c?.iopub), notification: await port(s.notification, c?.notification),
    broadcast: await port(s.broadcastClient, c?.broadcast),
  }
  const engineInfo: EngineConnectionInfo = {
    ...base, control: await port(s.controlEngine, e?.control), mux: await port(s.muxEngine, e?.mux), task: await port(task.engine, e?.task),
    iopub: await port(s.iopubEngine, e?.iopub), hb_ping: await port(s.hbPing, e?.hb_ping), hb_pong: await port(s.hbPong, e?.hb_pong),
    broadcast: [await port(s.broadcastEngine, Array.isArray(e?.broadcast) ? (e.broadcast[0]) : undefined)],
  }
  return { clientInfo, engineInfo }
}
