// The wrangler configuration the local stack runs: wrangler.toml without its `[build]` table, with the
// playground built once beforehand. With a custom build, `wrangler dev` builds at start and again when
// its file watcher becomes ready, and the second build reloads the worker a second or two after it first
// answers: POSTs in flight then get wrangler's own 503 ("Your worker restarted mid-request"), which is no
// answer of the API's (measured: 1 to 8 per 60 s `npm run load`). Everything else is wrangler.toml as is;
// the file sits beside it, so relative paths and .dev.vars resolve the same way.
import { randomUUID } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { buildPlayground } from './build-playground.ts'

/** Where the derived configuration is written (git-ignored), beside wrangler.toml. */
export const STACK_WRANGLER_CONFIG = 'wrangler.local-stack.toml'

/**
 * The configuration without its `[build]` table (the build's comment lines above it stay).
 *
 * @example
 * withoutCustomBuild('[build]\ncommand = "x"\n\n[assets]\ndirectory = "d"\n') // '[assets]\ndirectory = "d"\n'
 */
export function withoutCustomBuild(toml: string): string {
  return toml.replace(/^\[build\]\n(?:(?!\[)[^\n]*\n)*/m, '')
}

/** Builds the playground and writes the stack's configuration; returns its path. */
export async function prepareStackWranglerConfig(): Promise<string> {
  await buildPlayground()
  const derived = withoutCustomBuild(await readFile('wrangler.toml', 'utf8'))
  // Several stacks (the test projects) may start at once: each replaces the file atomically.
  const temporary = `${STACK_WRANGLER_CONFIG}.${randomUUID()}.tmp`
  await writeFile(
    temporary,
    `# Written by edge/scripts/stack-wrangler-config.ts for the local stack: wrangler.toml without [build].\n${derived}`,
  )
  await rename(temporary, STACK_WRANGLER_CONFIG)
  return STACK_WRANGLER_CONFIG
}
