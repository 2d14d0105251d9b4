// `npm run lint:openapi` (part of `npm test`): the edge's OpenAPI document, exactly what GET /openapi.json
// serves, built from the app in Node (at run time the app loads no Workers-only module: the Durable
// Object classes are index.ts's), written to a temporary file and linted with Redocly's recommended ruleset,
// its warnings counted as errors (`recommended-strict`: with `recommended` a warning still exits 0).
// Exits with Redocly's status. Redocly's telemetry and update check stay off: the lint runs offline.
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// The app type-checks against the Workers runtime (edge/tsconfig.json) and this script against Node
// (tsconfig.json): a computed specifier keeps tsc from following the import across the two.
const appModule = new URL('../src/app.ts', import.meta.url).href
const { openApiDocument }: { openApiDocument(): object } = await import(appModule)

const dir = await mkdtemp(join(tmpdir(), 'dualrate-openapi-'))
const file = join(dir, 'openapi.json')
try {
  await writeFile(file, `${JSON.stringify(openApiDocument(), null, 2)}\n`)
  const lint = spawnSync('redocly', ['lint', '--extends', 'recommended-strict', file], {
    stdio: 'inherit',
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  })
  if (lint.error) {
    console.error(
      `lint:openapi: could not run redocly (${lint.error.message}); use npm run lint:openapi`,
    )
  }
  process.exitCode = lint.status ?? 1
} finally {
  await rm(dir, { recursive: true, force: true })
}
