import t from 'tap'
import { decodeValue, encodeValue } from '../../src/protocol/payload.js'
import { CLASS_TAG, clearSerializers, registerSerializer, reviveRegistered, serializerModules, tagRegistered } from '../../src/protocol/serializers.js'
import { withSerializerModules } from '../../src/client/functions.js'

class Money {
  constructor(readonly cents: number, readonly currency: string) {}
  toString(): string {
    return `${(this.cents / 100).toFixed(2)} ${this.currency}`
  }
}
class Other {
  constructor(readonly v: number) {}
}

const register = () => registerSerializer(Money, { name: 'Money', encode: (m): [number, string] => [m.cents, m.currency], decode: ([c, cur]) => new Money(c, cur) })

t.beforeEach(() => clearSerializers())
t.teardown(() => clearSerializers())

t.test('a registered instance comes back as its class, wherever it is nested', async (t) => {
  register()
  const value = { total: new Money(1250, 'EUR'), list: [new Money(1, 'USD')], byName: new Map([['a', new Money(2, 'GBP')]]), set: new Set([new Money(3, 'JPY')]) }
  const back = decodeValue(encodeValue(value)) as typeof value
  t.ok(back.total instanceof Money)
  t.equal(back.total.toString(), '12.50 EUR')
  t.ok(back.list[0] instanceof Money)
  t.ok(back.byName.get('a') instanceof Money)
  t.ok([...back.set][0] instanceof Money)
  t.ok(value.total instanceof Money, 'the value sent is not modified')
  t.equal(value.list[0]?.currency, 'USD')
})

t.test('without the registration on the receiving side, the tagged data stays; unregistered classes are plain objects', async (t) => {
  register()
  const frames = encodeValue([new Money(5, 'EUR'), new Other(1)])
  clearSerializers()
  t.same(decodeValue(frames), [{ [CLASS_TAG]: 'Money', data: [5, 'EUR'] }, { v: 1 }])
  t.same(tagRegistered(new Other(2)), new Other(2), 'nothing registered: the value itself')
  register()
  t.ok((reviveRegistered([{ [CLASS_TAG]: 'Money', data: [5, 'EUR'] }]) as unknown[])[0] instanceof Money)
})

t.test('bad registrations are refused by name', async (t) => {
  t.throws(() => registerSerializer('Money' as never, { name: 'x', encode: () => 1, decode: () => ({}) }), { name: 'ConfigError', message: /must be a class/ })
  t.throws(() => registerSerializer(Money, { name: '', encode: () => 1, decode: () => new Money(1, 'x') }), { message: /name must be a non-empty string/ })
  t.throws(() => registerSerializer(Money, { name: 'M', encode: 1 as never, decode: () => new Money(1, 'x') }), { message: /encode of 'M' must be a function/ })
  t.throws(() => registerSerializer(Money, { name: 'M', encode: () => 1, decode: () => new Money(1, 'x'), modul: 'x' } as never), { message: /unknown option 'modul'/ })
  register()
  t.throws(() => registerSerializer(Other, { name: 'Money', encode: (o) => o.v, decode: (v: number) => new Other(v) }), { message: /the name 'Money' is taken by class Money/ })
  t.doesNotThrow(() => register(), 'the same class again replaces its serializer')
})

t.test('a registration with a module makes tasks import it first on their engines', async (t) => {
  const fn = { kind: 'source' as const, source: '(x) => x', name: 'id' }
  t.equal(withSerializerModules(fn), fn, 'no modules: the task is unchanged')
  registerSerializer(Money, { name: 'Money', encode: (m) => m.cents, decode: (c: number) => new Money(c, 'EUR'), module: new URL('file:///srv/money.js') })
  t.same(serializerModules(), ['file:///srv/money.js'])
  const wrapped = withSerializerModules(fn)
  t.equal(wrapped.kind, 'source')
  t.match((wrapped as { source: string }).source, /await import\(m\)/)
  t.match((wrapped as { source: string }).source, /\["file:\/\/\/srv\/money\.js"\]/)
  const dependent = withSerializerModules({ kind: 'dependent', fn, check: fn, args: [] })
  t.equal(dependent.kind, 'dependent', 'conditions stay outside')
})
