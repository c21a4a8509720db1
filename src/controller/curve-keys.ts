import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { writeFileAtomicSync } from '../common/atomic-file.js'
import type { Logger } from '../common/log.js'
import { isCurveKey } from '../protocol/connection-file.js'
import { newCurveKeyPair, type CurveKeyPair } from '../transport/sockets.js'

/**
 * The controller's CurveZMQ key pair lives apart from the connection files, which carry only the public half
 * (`curve_serverkey`) and are handed to clients and engines: the secret half stays in a 0600 file of the profile's
 * 0700 `security/` directory, so that `--reuse` can keep the key its peers already know.
 */
export function curveKeyFilePath(profileDir: string, clusterId: string): string {
  return join(profileDir, 'security', clusterId ? `ipcontroller-${clusterId}-curve-secret.json` : 'ipcontroller-curve-secret.json')
}

/**
 * The key pair to serve with. With `reuse`, the stored pair when its public key is the `curve_serverkey` the
 * previous connection files gave out; otherwise (or when it is missing or damaged) a fresh one. Never logs a key.
 */
export function serverKeyPair(path: string, reuse: boolean, previousServerKey: string | null | undefined, log: Logger): CurveKeyPair {
  if (reuse && previousServerKey) {
    const stored = readKeyPair(path)
    if (stored?.publicKey === previousServerKey) return stored
    log.warn(`--reuse --curve: no usable key pair in ${path} for the previous files' curve_serverkey; a new one is made, and peers must read the new connection files`)
  }
  return newCurveKeyPair()
}

function readKeyPair(path: string): CurveKeyPair | undefined {
  try {
    const pair = JSON.parse(readFileSync(path, 'utf8')) as Partial<CurveKeyPair>
    return isCurveKey(pair.publicKey) && isCurveKey(pair.secretKey) ? { publicKey: pair.publicKey, secretKey: pair.secretKey } : undefined
  } catch {
    return undefined
  }
}

/** Writes the pair with mode 0600, atomically. */
export function writeKeyPair(path: string, pair: CurveKeyPair): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  writeFileAtomicSync(path, JSON.stringify({ publicKey: pair.publicKey, secretKey: pair.secretKey }), { mode: 0o600 })
}

export function removeKeyPair(path: string): void {
  rmSync(path, { force: true })
}
