import v8 from 'node:v8'
import { ProtocolError } from '../common/errors.js'
import { reviveRegistered, tagRegistered } from './serializers.js'

/**
 * Our buffers of `apply_request`/`apply_reply` (the controller never reads them; docs/protocol.md):
 *   request: [function descriptor (JSON), arguments (v8 structured clone), ...out-of-band binary frames]
 *   reply:   [result (v8 structured clone), ...out-of-band binary frames]
 * Typed arrays and Buffers of at least OUT_OF_BAND_BYTES travel as frames of their own, neither copied into
 * the clone on the way out nor out of the frame on the way in.
 */
export const OUT_OF_BAND_BYTES = 64 * 1024

/** How a function travels: its source, a module export engines import, or a well-known global by path. */
export type FunctionDescriptor =
  | { kind: 'source'; source: string; name: string }
  | { kind: 'module'; module: string; export: string }
  | { kind: 'global'; path: string }
  /** Runs `fn` only where `check(...args)` holds on the engine; otherwise the task fails with UnmetDependency. */
  | { kind: 'dependent'; fn: FunctionDescriptor; check: FunctionDescriptor; args: unknown[] }
  /** Runs `fn` only where every module imports; each is in scope of `fn`'s source under its name. */
  | { kind: 'requires'; fn: FunctionDescriptor; modules: RequiredModule[] }

/** A module a task requires: the specifier the engine imports, and the name it is bound to in the task. */
export interface RequiredModule {
  name: string
  specifier: string
}

const DESCRIPTOR_KINDS: readonly unknown[] = ['source', 'module', 'global', 'dependent', 'requires']

/** Whether a value names one of the function descriptor kinds above. */
export function isDescriptorKind(kind: unknown): boolean {
  return DESCRIPTOR_KINDS.includes(kind)
}

const viewTypes = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView, Buffer,
] as const
type ViewType = (typeof viewTypes)[number]

// Node implements these hooks on the default (de)serializer but does not declare them in its types.
interface HostObjectHooks {
  _writeHostObject: (this: v8.Serializer, view: object) => void
  _readHostObject: (this: v8.Deserializer) => unknown
}
const writeInline = (v8.DefaultSerializer.prototype as unknown as HostObjectHooks)._writeHostObject
const readInline = (v8.DefaultDeserializer.prototype as unknown as HostObjectHooks)._readHostObject

const INLINE = 0
const OUT_OF_BAND = 1

class FrameSerializer extends v8.DefaultSerializer {
  readonly frames: Buffer[] = []
  constructor(private readonly threshold: number) {
    super()
  }
  _writeHostObject(view: NodeJS.TypedArray | DataView): void {
    if (view.byteLength < this.threshold) {
      this.writeUint32(INLINE)
      writeInline.call(this, view)
      return
    }
    const type = viewTypes.findIndex((t) => view.constructor === t)
    if (type < 0) throw new ProtocolError(`cannot send a ${view.constructor.name}`)
    this.writeUint32(OUT_OF_BAND)
    this.writeUint32(type)
    this.writeUint32(this.frames.length)
    this.frames.push(Buffer.from(view.buffer, view.byteOffset, view.byteLength))
  }
}

class FrameDeserializer extends v8.DefaultDeserializer {
  /** How many of the frames after the first the value refers to (the highest index used, plus one). */
  used = 0
  constructor(data: Buffer, private readonly frames: readonly Buffer[]) {
    super(data)
  }
  _readHostObject(): unknown {
    if (this.readUint32() === INLINE) return readInline.call(this)
    const Type = viewTypes[this.readUint32()]
    const index = this.readUint32()
    this.used = Math.max(this.used, index + 1)
    const frame = this.frames[index]
    if (!Type || !frame) throw new ProtocolError('payload refers to a binary frame that is missing')
    return viewOver(Type, frame)
  }
}

function viewOver(Type: ViewType, frame: Buffer): unknown {
  if (Type === Buffer) return frame
  if (Type === DataView) return new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const Typed = Type as unknown as { BYTES_PER_ELEMENT: number; new (b: ArrayBufferLike, offset: number, length: number): unknown }
  const size = Typed.BYTES_PER_ELEMENT
  // A view must start at a multiple of its element size; copy only when the frame does not.
  const source = frame.byteOffset % size === 0 ? frame : Buffer.from(frame)
  return new Typed(source.buffer, source.byteOffset, source.byteLength / size)
}

/** Serializes a value; throws the DataCloneError of v8 for what cannot be cloned (see findUncloneable). */
export function encodeValue(value: unknown, threshold = OUT_OF_BAND_BYTES): Buffer[] {
  const serializer = new FrameSerializer(threshold)
  serializer.writeHeader()
  // Instances of registered classes travel tagged (serializers.ts); with none registered this is the value itself.
  serializer.writeValue(tagRegistered(value))
  return [serializer.releaseBuffer(), ...serializer.frames]
}

export function decodeValue(frames: readonly Buffer[]): unknown {
  return decodeValueAt(frames, 0).value
}

/**
 * Decodes the value whose first frame is `frames[offset]`, and says where the next value starts: the hub sends
 * several results' frames back to back (result_reply), and every out-of-band frame of a value is referred to.
 */
export function decodeValueAt(frames: readonly Buffer[], offset: number): { value: unknown; next: number } {
  const data = frames[offset]
  if (!data) throw new ProtocolError('payload has no frames')
  const deserializer = new FrameDeserializer(data, frames.slice(offset + 1))
  let value: unknown
  try {
    deserializer.readHeader()
    value = deserializer.readValue()
  } catch (e) {
    if (e instanceof ProtocolError) throw e
    throw new ProtocolError(`payload is not a valid structured clone: ${(e as Error).message}`, { cause: e })
  }
  // Instances of classes registered here come back as such (serializers.ts); a decode that throws says so itself.
  return { value: reviveRegistered(value), next: offset + 1 + deserializer.used }
}

/** Buffers of an apply_request. */
export function encodeApply(fn: FunctionDescriptor, args: readonly unknown[], threshold = OUT_OF_BAND_BYTES): Buffer[] {
  return [Buffer.from(JSON.stringify(fn)), ...encodeValue(args, threshold)]
}

export function decodeApply(buffers: readonly Buffer[]): { fn: FunctionDescriptor; args: unknown[] } {
  const [fnFrame, ...rest] = buffers
  if (!fnFrame) throw new ProtocolError('apply_request has no buffers: expected a function descriptor and arguments')
  let fn: FunctionDescriptor
  try {
    fn = JSON.parse(fnFrame.toString('utf8')) as FunctionDescriptor
  } catch (e) {
    throw new ProtocolError('apply_request buffer 0 is not a JSON function descriptor (was it sent by a Python client?)', { cause: e })
  }
  if (!fn || !isDescriptorKind(fn.kind)) throw new ProtocolError('apply_request buffer 0 is not a function descriptor')
  const args = decodeValue(rest)
  if (!Array.isArray(args)) throw new ProtocolError('apply_request arguments are not an array')
  return { fn, args }
}

/**
 * The path (like `args[1].options.callback`) of the first part of `value` that structured clone refuses,
 * or undefined if it can be cloned. Used only to explain a refusal, so its cost does not matter.
 */
export function findUncloneable(value: unknown, path: string, seen = new Set<object>()): { path: string; what: string } | undefined {
  if (typeof value === 'function') return { path, what: `a function (${value.name || 'anonymous'})` }
  if (typeof value === 'symbol') return { path, what: 'a symbol' }
  if (value === null || typeof value !== 'object') return undefined
  // Cycles clone fine, but walking one (globalThis.global, a parent link) would recurse without end; an object met
  // again is already being searched from its first path.
  if (seen.has(value)) return undefined
  seen.add(value)
  try {
    v8.serialize(value)
    return undefined
  } catch (e) {
    const entries: [string, unknown][] =
      value instanceof Map ? [...value.entries()].map(([k, v]) => [`${path}.get(${String(k)})`, v])
      : value instanceof Set ? [...value].map((v, i) => [`${path}[set item ${i}]`, v])
      : Array.isArray(value) ? value.map((v, i) => [`${path}[${i}]`, v])
      : Object.entries(value).map(([k, v]) => [`${path}.${k}`, v])
    for (const [childPath, child] of entries) {
      const found = findUncloneable(child, childPath, seen)
      if (found) return found
    }
    const name = (value).constructor?.name ?? 'object'
    return { path, what: `a ${name} (${(e as Error).message})` }
  }
}
