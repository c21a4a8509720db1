import type { Header, Message } from '../protocol/messages.js'
import { decodeValueAt } from '../protocol/payload.js'

/** One engine's reply as the controller's relay lists it in a coalesced reply (`broadcast_replies`, ours). */
interface CoalescedPart {
  content: Record<string, unknown>
  metadata: Record<string, unknown>
  date: string
  buffers: number
}

/**
 * A coalesced broadcast reply cut into one reply per target (parent msg_id `<original>_<uuid>`, as that engine's
 * own reply had). Our controller lists each engine's reply (`broadcast_replies`, in target order); ipyparallel's
 * sends only the last reply (or the first failed one) with all results' buffers, which are then cut value by value.
 */
export function splitCoalesced(msg: Message, original: string, targets: readonly string[]): Message[] {
  const part = (uuid: string, content: Record<string, unknown>, metadata: Record<string, unknown>, buffers: Buffer[], date = msg.header.date): Message => ({
    header: { ...msg.header, date },
    parent_header: { ...msg.parent_header, msg_id: `${original}_${uuid}` } as Header,
    metadata: { ...metadata, engine: uuid, is_coalescing: false },
    content,
    buffers,
  })
  const listed = msg.metadata.broadcast_replies
  if (Array.isArray(listed) && listed.length === targets.length) {
    let at = 0
    return (listed as CoalescedPart[]).map((r, i) => {
      const buffers = msg.buffers.slice(at, at + r.buffers)
      at += r.buffers
      return part(targets[i] as string, r.content, r.metadata, buffers, r.date)
    })
  }
  if (msg.content.status !== 'ok') return targets.map((uuid) => part(uuid, msg.content, msg.metadata, []))
  // ipyparallel's tree lists its targets in its own order; the values follow that order.
  const order = Array.isArray(msg.metadata.broadcast_targets) ? (msg.metadata.broadcast_targets as [string, number][]).map(([uuid]) => uuid) : [...targets]
  const byUuid = new Map<string, Buffer[]>()
  let at = 0
  for (const uuid of order) {
    const { next } = decodeValueAt(msg.buffers, at)
    byUuid.set(uuid, msg.buffers.slice(at, next))
    at = next
  }
  return targets.map((uuid) => part(uuid, msg.content, msg.metadata, byUuid.get(uuid) ?? []))
}
