/**
 * `displayOutputs()`: the captured stdout and stderr of a result's tasks, each under a `[stdout:<engine id>]` line
 * as ipyparallel's `display_outputs` shows them. Pure: it builds sections; the result writes them.
 */

/** How `displayOutputs` orders what it shows. */
export type OutputGrouping = 'type' | 'engine'

/** One task's output as `displayOutputs` reads it. */
export interface TaskOutput {
  engineId: number | undefined
  stdout: string
  stderr: string
}

/** A piece of text for one stream. */
export interface OutputSection {
  stream: 'stdout' | 'stderr'
  text: string
}

/**
 * The sections to show. With one task (`single`), its stdout then its stderr, without headers. Otherwise every
 * non-empty output under a header naming its stream and engine: `'type'` shows all stdout (in task order), then all
 * stderr; `'engine'` shows each engine's stdout and stderr before the next engine's (engines in order of their
 * first task). Consecutive outputs of one engine and stream share one header. Each section ends with a newline.
 */
export function outputSections(outputs: readonly TaskOutput[], groupBy: OutputGrouping, single: boolean): OutputSection[] {
  const ended = (text: string): string => (text.endsWith('\n') ? text : `${text}\n`)
  if (single) {
    const only = outputs[0]
    if (!only) return []
    return (['stdout', 'stderr'] as const).flatMap((stream) => (only[stream] ? [{ stream, text: ended(only[stream]) }] : []))
  }
  const sections: OutputSection[] = []
  let last = ''
  const add = (stream: 'stdout' | 'stderr', o: TaskOutput): void => {
    if (!o[stream]) return
    const header = `[${stream}:${o.engineId ?? '?'}]`
    const text = ended(o[stream])
    if (header === last) sections.push({ stream, text })
    else sections.push({ stream, text: `${header}\n${text}` })
    last = header
  }
  if (groupBy === 'type') {
    for (const o of outputs) add('stdout', o)
    for (const o of outputs) add('stderr', o)
    return sections
  }
  const engines = [...new Set(outputs.map((o) => o.engineId))]
  for (const id of engines) {
    const mine = outputs.filter((o) => o.engineId === id)
    for (const o of mine) add('stdout', o)
    for (const o of mine) add('stderr', o)
  }
  return sections
}
