import { randomBytes } from 'node:crypto'

/** A new session id in jupyter_client's shape: 16 random bytes as `8hex-24hex`. */
export function newSessionId(): string {
  const hex = randomBytes(16).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8)}`
}

/** A fresh HMAC key for a controller's connection files. */
export function newKey(): string {
  return newSessionId()
}
