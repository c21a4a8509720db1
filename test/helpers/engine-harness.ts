import { join } from 'node:path'
import { writeConnectionFile, type EngineConnectionInfo } from '../../src/protocol/connection-file.js'
import { Session } from '../../src/protocol/session.js'
import {
  Outbox, bindPort, closeAll, createPublisher, createRouter, createSubscriber, receiveLoop, type AnySocket, type Frames, type Publisher, type Router,
} from '../../src/transport/sockets.js'
import { peek } from './garbage.js'
import type { Teardown } from './processes.js'

export type EngineChannel = 'mux' | 'task' | 'control' | 'broadcast'

/**
 * A controller stand-in for one real engine process: it binds the engine's channels, answers its registration,
 * pings its heart, and lets a test send anything down the channels the engine connects to (the engine's shell
 * and control ROUTERs see what a controller would relay). Replies are matched by their parent msg_id.
 */
export class EngineHarness {
  readonly session: Session
  readonly file: string
  readonly routers: Record<EngineChannel | 'registration', Router>
  readonly outboxes = new Map<Router | Publisher, Outbox>()
  /** Replies from the engine, by the msg_id of the request they answer. */
  private readonly waiters = new Map<string, (frames: Frames) => void>()
  private readonly sockets: AnySocket[] = []
  private ping: Publisher | undefined
  private timer: NodeJS.Timeout | undefined
  registered = false

  private constructor(t: Teardown, dir: string, key: string) {
    this.session = new Session({ key })
    this.file = join(dir, 'fake-controller-engine.json')
    // The engine's ROUTERs reach ours by routing id, as they reach the controller's mux_out, task_out, ...
    this.routers = {
      registration: createRouter(),
      mux: createRouter({ routingId: 'mux_out', mandatory: true }),
      task: createRouter({ routingId: 'task_out', mandatory: true }),
      control: createRouter({ routingId: 'control_out', mandatory: true }),
      broadcast: createRouter({ routingId: 'sub_scheduler_00', mandatory: true }),
    }
    this.sockets.push(...Object.values(this.routers))
    t.teardown(() => this.close())
  }

  static async start(t: Teardown, dir: string, key = 'fuzz-engine-key', hbPeriodMs = 1000): Promise<EngineHarness> {
    const h = new EngineHarness(t, dir, key)
    const iface = 'tcp://127.0.0.1'
    const ping = createPublisher()
    const pong = createRouter()
    const iopub = createSubscriber()
    h.ping = ping
    h.sockets.push(ping, pong, iopub)
    const r = h.routers
    const info: EngineConnectionInfo = {
      ssh: '', interface: iface, key, curve_serverkey: null, location: '127.0.0.1', pack: 'json', unpack: 'json', signature_scheme: 'hmac-sha256',
      registration: await bindPort(r.registration, iface), control: await bindPort(r.control, iface), mux: await bindPort(r.mux, iface),
      task: await bindPort(r.task, iface), iopub: await bindPort(iopub, iface), hb_ping: await bindPort(ping, iface), hb_pong: await bindPort(pong, iface),
      broadcast: [await bindPort(r.broadcast, iface)],
    }
    for (const socket of [...Object.values(r), ping]) h.outboxes.set(socket, new Outbox(socket, () => {}))
    const connectionInfo = Object.fromEntries(Object.entries(info).filter(([k]) => !['key', 'curve_serverkey', 'location', 'pack', 'unpack', 'signature_scheme', 'ssh'].includes(k)))
    void receiveLoop(r.registration, (frames) => {
      const { idents, msg } = h.session.deserialize(frames)
      if (msg.header.msg_type !== 'registration_request') return
      h.send(r.registration, h.session.serialize(h.session.msg('registration_reply', { status: 'ok', id: 0, hb_period: hbPeriodMs, connection_info: connectionInfo }, { parent: msg.header }), idents))
      h.registered = true
    }, () => {}).catch(() => {})
    for (const channel of ['mux', 'task', 'control', 'broadcast'] as const) {
      void receiveLoop(r[channel], (frames) => {
        const parentId = peek(frames)?.parent.msg_id
        if (typeof parentId === 'string') h.take(parentId)?.(frames)
      }, () => {}).catch(() => {})
    }
    void receiveLoop(iopub, () => {}, () => {}).catch(() => {})
    void receiveLoop(pong, () => {}, () => {}).catch(() => {})
    // The engine stops after many missed pings; a steady beat keeps it registered for the whole run.
    h.timer = setInterval(() => h.send(ping, [Buffer.from(String(Date.now()))]), hbPeriodMs / 2)
    writeConnectionFile(h.file, info)
    return h
  }

  private take(id: string): ((frames: Frames) => void) | undefined {
    const w = this.waiters.get(id)
    this.waiters.delete(id)
    return w
  }

  send(socket: Router | Publisher, frames: Frames): void {
    this.outboxes.get(socket)?.send(frames)
  }

  /** Sends `frames` to the engine on `channel` and waits until ZeroMQ has them (one send at a time per socket). */
  async sendRaw(channel: EngineChannel | 'ping', engineUuid: string, frames: Frames): Promise<void> {
    const socket = channel === 'ping' ? this.ping : this.routers[channel]
    if (!socket) return
    const outbox = this.outboxes.get(socket)
    outbox?.send(channel === 'ping' ? frames : [Buffer.from(engineUuid), ...frames])
    await outbox?.drained()
  }

  /** Sends a signed request once ZeroMQ has it; `reply` resolves with the engine's reply frames, or rejects after the ceiling. */
  async request(channel: EngineChannel, engineUuid: string, wire: Frames, msgId: string, timeoutMs = 30_000): Promise<{ reply: Promise<Frames> }> {
    const reply = new Promise<Frames>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(msgId)
        reject(new Error(`no reply to ${msgId} on ${channel} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiters.set(msgId, (frames) => {
        clearTimeout(timer)
        resolve(frames)
      })
    })
    await this.sendRaw(channel, engineUuid, wire)
    return { reply }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    closeAll(this.sockets)
  }
}
