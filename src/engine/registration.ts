import { JsParallelError, ProtocolError, TimeoutError } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import type { RegistrationReplyContent, RegistrationRequestContent } from '../protocol/catalogue.js'
import { contentOf } from '../protocol/content-readers.js'
import { replyOutcome } from '../protocol/replies.js'
import type { Session } from '../protocol/session.js'
import type { Dealer, Frames } from '../transport/sockets.js'
import { realClock, type Clock, type TimerHandle } from '../common/clock.js'

/** The controller answered the registration_request with an error (the uuid is in use, ...). */
export class RegistrationRefused extends JsParallelError {}

export interface Registration {
  /** The id the hub gave this engine. */
  id: number
  /** The controller's heartbeat period in ms. */
  hbPeriodMs: number
}

export interface RegisterOptions {
  session: Session
  /** DEALER whose routing id is the engine uuid, connected to the registration channel. */
  socket: Dealer
  /** The DEALER's send queue: `drained` resolves once what was sent has been handed to ZeroMQ. */
  outbox: { send(frames: Frames): void; drained(): Promise<void> }
  /** An id to ask for; the hub may give another. */
  requestedId: number | undefined
  timeoutMs: number
  log: Logger
  clock?: Clock
}

/**
 * ipengine's `register`: sends `registration_request {uuid, id?, language}` and waits for the reply.
 * Messages that fail verification or are of another type are skipped; no valid reply within `timeoutMs`
 * sends `unregistration_request {id: null}` (as ipengine does) and throws TimeoutError.
 */
export async function register(options: RegisterOptions): Promise<Registration> {
  const { session, socket, outbox, requestedId, timeoutMs, log } = options
  const clock = options.clock ?? realClock
  const content: RegistrationRequestContent = { uuid: session.session, language: 'javascript' }
  if (requestedId !== undefined) content.id = requestedId
  outbox.send(session.serialize(session.msg('registration_request', content, { metadata: { engine: session.session } })))

  let timer: TimerHandle | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => reject(new TimeoutError(
      `no registration reply from the controller within ${timeoutMs} ms; is it running, and is no other engine using uuid ${session.session}?`,
    )), timeoutMs)
  })
  try {
    for (;;) {
      const receiving = socket.receive()
      // The receive outlives a timeout and then fails when the socket closes; that failure is expected.
      receiving.catch(() => {})
      const frames = await Promise.race([receiving, expired])
      let reply
      try {
        reply = session.deserialize(frames).msg
      } catch (e) {
        log.warn(`registration: dropped a message: ${(e as Error).message}`)
        continue
      }
      if (reply.header.msg_type !== 'registration_reply') continue
      const outcome = replyOutcome(reply.content)
      if (outcome.status !== 'ok') {
        const why = outcome.status === 'error' ? `${outcome.error.ename}: ${outcome.error.evalue}` : 'aborted'
        throw new RegistrationRefused(`the controller refused the registration: ${why}`)
      }
      let answer: RegistrationReplyContent
      try {
        answer = contentOf(reply, 'registration_reply')
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e
        throw new RegistrationRefused(`the registration reply has no engine id (${e.message})`, { cause: e })
      }
      const hbPeriodMs = answer.hb_period ?? 3000
      if (requestedId !== undefined && answer.id !== requestedId) log.warn(`did not get the requested id: ${answer.id} != ${requestedId}`)
      return { id: answer.id, hbPeriodMs }
    }
  } catch (e) {
    if (e instanceof TimeoutError) {
      outbox.send(session.serialize(session.msg('unregistration_request', { id: null }, { metadata: { engine: session.session } })))
      await outbox.drained()
    }
    throw e
  } finally {
    clock.clearTimeout(timer)
  }
}
