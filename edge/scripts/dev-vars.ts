// Writes .dev.vars for `wrangler dev`: the edge <-> gpu-service HMAC secret from .dev/hmac-secret (the
// file the gpu-service generates and reads in development; created here first if the edge starts
// first) and a persistent local result-key secret. `npm run dev:edge` runs this before wrangler dev.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const DEV_DIR = process.env.DUALRATE_DEV_DIR ?? '.dev'

/** The secret in `.dev/<name>`, generated (32 random bytes, hex) when missing. */
async function devSecret(name: string): Promise<string> {
  const path = join(DEV_DIR, name)
  try {
    const secret = (await readFile(path, 'utf8')).trim()
    if (secret.length >= 32) return secret
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const secret = randomBytes(32).toString('hex')
  await mkdir(DEV_DIR, { recursive: true })
  await writeFile(path, `${secret}\n`, { mode: 0o600 })
  return secret
}

const vars = {
  BACKEND_SECRET: process.env.DUALRATE_HMAC_SECRET ?? (await devSecret('hmac-secret')),
  RESULT_KEY_SECRET: await devSecret('result-key-secret'),
  // Local webhook receivers are plain http.
  ALLOW_HTTP_WEBHOOKS: 'true',
}
await writeFile(
  '.dev.vars',
  `${Object.entries(vars)
    .map(([name, value]) => `${name}=${value}`)
    .join('\n')}\n`,
  { mode: 0o600 },
)
console.log(`.dev.vars written (${Object.keys(vars).join(', ')})`)
