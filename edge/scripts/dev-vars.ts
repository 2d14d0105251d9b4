// Writes .dev.vars for `wrangler dev`: the edge <-> gpu-service HMAC secret from .dev/hmac-secret (the
// file the gpu-service generates and reads in development; created here first if the edge starts
// first) and a persistent local result-key secret. `npm run dev:edge` runs this before wrangler dev.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface DevVars {
  BACKEND_SECRET: string
  RESULT_KEY_SECRET: string
  ALLOW_HTTP_WEBHOOKS: string
}

/** The secret in `<devDir>/<name>`, generated (32 random bytes, hex, mode 0600) when missing. */
async function devSecret(devDir: string, name: string): Promise<string> {
  const path = join(devDir, name)
  try {
    const secret = (await readFile(path, 'utf8')).trim()
    if (secret.length >= 32) return secret
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const secret = randomBytes(32).toString('hex')
  await mkdir(devDir, { recursive: true })
  await writeFile(path, `${secret}\n`, { mode: 0o600 })
  return secret
}

/**
 * Makes sure .dev.vars exists with the shared development secrets and returns them.
 *
 * @example
 * const { BACKEND_SECRET } = await writeDevVars() // the gpu-service signs with the same secret
 */
export async function writeDevVars(
  devDir = process.env.DUALRATE_DEV_DIR ?? '.dev',
): Promise<DevVars> {
  const vars: DevVars = {
    BACKEND_SECRET: process.env.DUALRATE_HMAC_SECRET ?? (await devSecret(devDir, 'hmac-secret')),
    RESULT_KEY_SECRET: await devSecret(devDir, 'result-key-secret'),
    // Local webhook receivers are plain http.
    ALLOW_HTTP_WEBHOOKS: 'true',
  }
  const text = Object.entries(vars)
    .map(([name, value]) => `${name}=${value}`)
    .join('\n')
  await writeFile('.dev.vars', `${text}\n`, { mode: 0o600 })
  return vars
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const vars = await writeDevVars()
  console.log(`.dev.vars written (${Object.keys(vars).join(', ')})`)
}
