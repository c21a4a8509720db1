import writeFileAtomic from 'write-file-atomic'

export interface AtomicWriteOptions {
  /** The file's permissions, e.g. 0o600 for a file holding a key; set before the rename, so never wider even briefly. */
  mode?: number
  /** Flush the data to disk before the rename (default true). A file rewritten on the event loop may skip it. */
  fsync?: boolean
}

/**
 * Writes `data` to `path` so that a reader, or a process started after a crash, finds the previous file or the
 * new one whole, never part of one: write-file-atomic writes a temporary file beside it and renames it into place.
 */
export function writeFileAtomicSync(path: string, data: string, options: AtomicWriteOptions = {}): void {
  writeFileAtomic.sync(path, data, options)
}
