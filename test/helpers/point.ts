// A class registered with a serializer, for the tests of classes that survive the trip. Engines import this module
// (registerSerializer's `module`), so the registration happens in their executors as it does in the test.
import { registerSerializer } from '../../src/protocol/serializers.js'

export class Point {
  constructor(readonly x: number, readonly y: number) {}

  /** A method: only an instance of Point has it. */
  norm(): number {
    return Math.hypot(this.x, this.y)
  }

  /** Points made on the engine, for the way back. */
  static origin(): Point {
    return new Point(0, 0)
  }
}

registerSerializer(Point, {
  name: 'test.Point',
  encode: (p) => [p.x, p.y],
  decode: ([x, y]: number[]) => new Point(x ?? 0, y ?? 0),
  module: import.meta.url,
})
