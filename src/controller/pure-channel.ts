import type { Message } from '../protocol/messages.js'
import { TASK_ROUTER } from '../protocol/messages.js'
import { createDealer, createProxy, createRouter, type Curve, type Dealer, type Router } from '../transport/sockets.js'
import type { TaskChannel, TaskChannelHost } from './task-channel.js'

/** The name of the scheme that is this channel rather than a scheduler. */
export const PURE = 'pure'

/**
 * The `pure` task channel: a native ZeroMQ device (ROUTER to DEALER) hands tasks round robin to the connected
 * engines and their replies back, with no JavaScript per message. Nothing here sees a task, so there are no
 * dependencies, targets, retries or hwm, and the hub neither records these tasks nor counts them.
 */
export class PureTaskChannel implements TaskChannel {
  readonly sockets: { readonly client: Router; readonly engine: Dealer }
  readonly durable = []
  /** The device closes its own sockets when terminated; closing them under it is not allowed. */
  readonly closedOnStop = []
  readonly description = ''
  private proxy: { run(): Promise<void>; terminate(): void } | undefined
  private host!: TaskChannelHost

  constructor(curve: Curve | undefined) {
    this.sockets = {
      // Not mandatory: the device would stop at the first reply to a client that is not connected.
      client: createRouter({ routingId: 'task_in', mandatory: false, curve }),
      engine: createDealer({ routingId: TASK_ROUTER, curve }),
    }
  }

  open(host: TaskChannelHost): void {
    this.host = host
    this.proxy = createProxy(this.sockets.client, this.sockets.engine)
    this.proxy.run().catch((e: unknown) => host.log.error(`pure task device stopped: ${(e as Error).message}`))
  }

  resubmit(msg: Message): void {
    // No way into the device from here: the copy is recorded, and stays pending (as it always has under pure).
    this.host.ledger.submitted(msg, 'task')
  }

  engineJoined(): void {}
  engineLeft(): void {}
  adoptUnfinished(): void {}

  stop(): void {
    this.proxy?.terminate()
  }
}
