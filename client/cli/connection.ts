// Where the CLI finds the API and its key: flags first, then DUALRATE_API_BASE / DUALRATE_API_KEY, then
// the `.dev/local.json` that `npm start` writes for the local stack.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'

/** What `npm start` writes to `<dev dir>/local.json`, and what the CLI and tests read back. */
export const localStackFileSchema = z.object({
  apiBase: z.url(),
  apiKey: z.string().min(1),
})
export type LocalStackFile = z.infer<typeof localStackFileSchema>

export const LOCAL_STACK_FILE = 'local.json'

/** The folder of development files (`.dev`, or DUALRATE_DEV_DIR). */
export const devDir = (env: NodeJS.ProcessEnv = process.env) => env.DUALRATE_DEV_DIR || '.dev'

export interface Connection {
  apiBase: string
  apiKey: string | undefined
}

export class ConnectionError extends Error {
  override name = 'ConnectionError'
}

/**
 * The API base URL and key to use.
 *
 * @example
 * const { apiBase, apiKey } = await resolveConnection({ apiBase: values['api-base'] })
 */
export async function resolveConnection(
  flags: { apiBase?: string | undefined; apiKey?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): Promise<Connection> {
  const local = await readLocalStackFile(join(devDir(env), LOCAL_STACK_FILE))
  const apiBase = flags.apiBase || env.DUALRATE_API_BASE || local?.apiBase
  if (!apiBase) {
    throw new ConnectionError(
      'no API to talk to: pass --api-base URL, set DUALRATE_API_BASE, or run `npm start` ' +
        `(it writes ${join(devDir(env), LOCAL_STACK_FILE)})`,
    )
  }
  if (!z.url({ protocol: /^https?$/ }).safeParse(apiBase).success) {
    throw new ConnectionError(`the API base ${JSON.stringify(apiBase)} is not an http(s) URL`)
  }
  // The saved key belongs to the saved stack: it is not sent to another API.
  const localKey = local && local.apiBase === apiBase ? local.apiKey : undefined
  return { apiBase, apiKey: flags.apiKey || env.DUALRATE_API_KEY || localKey }
}

/** The local stack file, or undefined when there is none; a malformed one is an error naming it. */
export async function readLocalStackFile(path: string): Promise<LocalStackFile | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    const parsed = localStackFileSchema.safeParse(JSON.parse(text))
    if (parsed.success) return parsed.data
  } catch {}
  throw new ConnectionError(`${path} is not { "apiBase": URL, "apiKey": string }; delete it`)
}
