// Shared by the bin shims: load a compiled CLI from dist/ and turn a thrown error into one clear line.
import { existsSync } from 'node:fs'

export async function runMain(name) {
  const url = new URL(`../dist/src/cli/${name}.js`, import.meta.url)
  if (!existsSync(url)) {
    console.error(`jsparallel is not built: run 'npm run build' in ${new URL('..', import.meta.url).pathname}`)
    process.exit(2)
  }
  const cli = await import(url.href)
  try {
    await cli.main(process.argv, process.env)
  } catch (error) {
    console.error(`${name}: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
}
