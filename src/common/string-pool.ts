/**
 * One copy of strings that recur in many long-lived objects (the session id and message type in the header of every
 * queued task: JSON.parse makes a fresh string of each). Bounded: when `limit` strings are known it starts again.
 */
export class StringPool {
  private readonly known = new Map<string, string>()

  constructor(private readonly limit = 4096) {}

  of(value: string): string {
    const known = this.known.get(value)
    if (known !== undefined) return known
    if (this.known.size >= this.limit) this.known.clear()
    this.known.set(value, value)
    return value
  }
}
