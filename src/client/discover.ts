import { ConfigError, HandshakeRefused, TimeoutError } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import { checkConnectionInfo, CLIENT_KEYS, type ClientConnectionInfo } from '../protocol/connection-file.js'
import { contentOf } from '../protocol/content-readers.js'
import type { Message } from '../protocol/messages.js'
import { parentIdOf } from '../protocol/replies.js'
import { Session } from '../protocol/session.js'
import { SocketGroup } from '../transport/socket-group.js'
import { createDealer, curveClient, watchHandshake } from '../transport/sockets.js'

/** `tcp://host:port` (IPv6 hosts in brackets). */
const TCP_URL = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s[\]]+):(\d{1,5})$/

/** The host and port of a registration URL, or a ConfigError saying what form it must have. */
export function parseRegistrationUrl(url: unknown): { host: string; port: number } {
  const match = typeof url === 'string' ? TCP_URL.exec(url) : null
  const port = match ? Number(match[2]) : NaN
  if (!match || !(port > 0 && port < 65536)) {
    throw new ConfigError(`Client: url must be the controller's registration address, tcp://<host>:<port> (the 'registration' port of its client connection file), not ${JSON.stringify(url)}`)
  }
  return { host: match[1] as string, port }
}

/**
 * The client connection info of the controller whose registration socket is at `url`, from its connection_reply
 * (our controller lists its client channels there; ipyparallel's does not, so for it a connection file is needed).
 * The channels are reached at the URL's host.
 */
export async function connectionInfoFromUrl(url: string, key: string, curveServerKey: string | null, timeoutMs: number, log: Logger): Promise<ClientConnectionInfo> {
  const { host, port } = parseRegistrationUrl(url)
  const session = new Session({ key })
  const sockets = new SocketGroup({ log, drainMs: 100, dropSummaryOnClose: false })
  const dealer = sockets.add('query', createDealer({ curve: curveClient(curveServerKey) }))
  let unwatch = (): void => {}
  let timer: NodeJS.Timeout | undefined
  try {
    const request = session.msg('connection_request', {})
    const reply = await new Promise<Message>((resolve, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(
        `no connection_reply from ${url} within ${timeoutMs} ms: is a controller's registration port there, and is the key right? (a message with the wrong key is dropped unanswered)`,
      )), timeoutMs)
      unwatch = watchHandshake(dealer, (reason) => {
        reject(new HandshakeRefused(`the controller at ${url} refused the ZeroMQ handshake (${reason}); ${curveServerKey ? 'is curveServerKey its current key?' : 'does it run with --curve? then give curveServerKey'}`))
      })
      sockets.receive(dealer, (frames) => {
        const { msg } = session.deserialize(frames)
        if (parentIdOf(msg) === request.header.msg_id) resolve(msg)
      })
      dealer.connect(url)
      void sockets.send(dealer, session.serialize(request))
    })
    const { connection_info: info } = contentOf(reply, 'connection_reply')
    if (!info) {
      throw new ConfigError(`the controller at ${url} does not list its channels in connection_reply (ipyparallel's ipcontroller does not): connect with its connection file (connectionFile) instead`)
    }
    const filled = { ...info, key, signature_scheme: 'hmac-sha256', interface: `tcp://${host}`, location: host, registration: port, curve_serverkey: curveServerKey }
    return checkConnectionInfo<ClientConnectionInfo>(filled, [...CLIENT_KEYS, 'broadcast'], `the connection_reply of ${url}`)
  } finally {
    clearTimeout(timer)
    unwatch()
    await sockets.close()
  }
}
