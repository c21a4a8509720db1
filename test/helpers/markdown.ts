import { readFileSync } from 'node:fs'

/** One fenced code block of a Markdown file. */
export interface CodeBlock {
  /** The fence's info string (`js`, `python`, ... or '' for a plain fence). */
  lang: string
  /** 1-based line of the opening fence in the file. */
  line: number
  /** The block's text, ending with a newline. */
  code: string
}

/** The fenced (```) code blocks of a Markdown file, in order, optionally only those of one language. */
export function codeBlocks(file: string, lang?: string): CodeBlock[] {
  const text = readFileSync(file, 'utf8')
  const blocks: CodeBlock[] = []
  for (const m of text.matchAll(/^```([^\n`]*)\n([\s\S]*?)^```[ \t]*$/gm)) {
    const info = (m[1] ?? '').trim()
    const line = text.slice(0, m.index).split('\n').length
    if (lang === undefined || info === lang) blocks.push({ lang: info, line, code: m[2] ?? '' })
  }
  return blocks
}
