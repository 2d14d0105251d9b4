// API key administration: `npm run keys -- create --name dev [--rpm 60] [--concurrent 4]`,
// `npm run keys -- revoke --name dev`, `npm run keys -- list`, `--help`; a wrong command line prints
// one line saying why and the usage, and exits 64 (EX_USAGE). Works on wrangler's local KV state (the
// one `wrangler dev` uses) through getPlatformProxy; `--remote` uses the deployed namespace instead.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { KVNamespace } from '@cloudflare/workers-types'
import {
  API_KEY_PREFIX,
  apiKeyLimitsSchema,
  apiKeyRecordSchema,
  createApiKey,
  DEFAULT_LIMITS,
} from '../src/auth/api-key.ts'

const USAGE = `usage:
  npm run keys -- create --name NAME [--rpm N] [--concurrent N] [--json] [--remote] [--persist-to DIR]
  npm run keys -- revoke --name NAME [--remote] [--persist-to DIR]
  npm run keys -- list [--remote] [--persist-to DIR]
  npm run keys -- --help

  --rpm N           requests per minute (default ${DEFAULT_LIMITS.requestsPerMinute})
  --concurrent N    jobs queued or running at once (default ${DEFAULT_LIMITS.concurrentJobs})
  --json            print the new key as one JSON line
  --remote          the deployed KV namespace instead of the local state
  --persist-to DIR  the local state folder of wrangler dev (default .wrangler/state)`

/** sysexits.h EX_USAGE: the command line was wrong. */
const EX_USAGE = 64

/** Prints one line saying what is wrong, then the usage, and exits with EX_USAGE. */
function usageError(message: string): never {
  console.error(`npm run keys: ${message}\n\n${USAGE}`)
  process.exit(EX_USAGE)
}

function parseCommandLine() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        rpm: { type: 'string' },
        concurrent: { type: 'string' },
        remote: { type: 'boolean', default: false },
        'persist-to': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (error) {
    // parseArgs throws a TypeError with an ERR_PARSE_ARGS_* code for an unknown option or a missing value.
    const code = (error as NodeJS.ErrnoException).code ?? ''
    if (!code.startsWith('ERR_PARSE_ARGS_')) throw error
    const unknown = /^Unknown option '([^']+)'/.exec((error as Error).message)?.[1]
    usageError(unknown ? `unknown option ${unknown}` : (error as Error).message)
  }
}

/** A whole number of at least 1 from a flag, or a usage error naming the flag. */
function positiveInteger(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    usageError(`${flag} must be a whole number of at least 1, not ${JSON.stringify(text)}`)
  }
  return value
}

const { positionals, values } = parseCommandLine()

async function main(): Promise<void> {
  if (values.help) {
    console.log(USAGE)
    return
  }
  const command = positionals[0]
  if (command !== 'create' && command !== 'revoke' && command !== 'list') {
    usageError(
      command === undefined
        ? 'a command is required: create, revoke or list'
        : `unknown command ${JSON.stringify(command)}`,
    )
  }
  if (positionals.length > 1) usageError(`unexpected argument ${JSON.stringify(positionals[1])}`)
  if (command !== 'list' && !values.name) usageError(`${command} needs --name NAME`)
  const limits = {
    requestsPerMinute: positiveInteger(values.rpm, '--rpm', DEFAULT_LIMITS.requestsPerMinute),
    concurrentJobs: positiveInteger(
      values.concurrent,
      '--concurrent',
      DEFAULT_LIMITS.concurrentJobs,
    ),
  }
  // Loaded only now: wrangler takes seconds to import, and --help or a usage error need none of it.
  const { getPlatformProxy, unstable_readConfig } = await import('wrangler')
  // A config with only the API_KEYS namespace of wrangler.toml: the proxy then starts no Durable
  // Objects (whose classes live in the worker, which the proxy does not load).
  const { kv_namespaces } = unstable_readConfig({ config: 'wrangler.toml' })
  const namespace = kv_namespaces.find((entry: { binding: string }) => entry.binding === 'API_KEYS')
  if (!namespace) throw new Error('wrangler.toml has no API_KEYS KV namespace')
  const dir = await mkdtemp(join(tmpdir(), 'dualrate-keys-'))
  const configPath = join(dir, 'wrangler.json')
  await writeFile(configPath, JSON.stringify({ name: 'dualrate-keys', kv_namespaces: [namespace] }))
  const proxy = await getPlatformProxy<{ API_KEYS: KVNamespace }>({
    configPath,
    // The same folder as `wrangler dev --persist-to` (which keeps its state in <folder>/v3).
    persist: { path: resolve(values['persist-to'] ?? '.wrangler/state', 'v3') },
    remoteBindings: values.remote,
  })
  try {
    const keys = proxy.env.API_KEYS
    if (command === 'create') await create(keys, values.name as string, limits)
    else if (command === 'revoke') await revoke(keys, values.name as string)
    else await list(keys)
  } finally {
    await proxy.dispose()
    await rm(dir, { recursive: true, force: true })
  }
}

async function create(
  keys: KVNamespace,
  name: string,
  requested: { requestsPerMinute: number; concurrentJobs: number },
): Promise<void> {
  const limits = apiKeyLimitsSchema.parse(requested)
  const { key, storageKey, record } = await createApiKey(name, limits)
  await keys.put(storageKey, JSON.stringify(record), { metadata: { name } })
  if (values.json) {
    console.log(JSON.stringify({ key, name, limits, webhookSecret: record.webhookSecret }))
    return
  }
  console.log(`API key for "${name}" (shown once; only its SHA-256 is stored):\n\n  ${key}\n`)
  console.log(
    `limits: ${limits.requestsPerMinute} requests/min, ${limits.concurrentJobs} concurrent jobs`,
  )
  console.log(`webhook signing secret: ${record.webhookSecret}`)
}

async function storedKeys(keys: KVNamespace) {
  const found: { storageKey: string; name: string; createdAt: string }[] = []
  let cursor: string | undefined
  do {
    const page = await keys.list({ prefix: API_KEY_PREFIX, ...(cursor ? { cursor } : {}) })
    for (const entry of page.keys as { name: string }[]) {
      const record = apiKeyRecordSchema.safeParse(await keys.get(entry.name, 'json'))
      if (record.success) {
        found.push({
          storageKey: entry.name,
          name: record.data.name,
          createdAt: record.data.createdAt,
        })
      }
    }
    cursor = page.list_complete ? undefined : page.cursor
  } while (cursor)
  return found
}

async function revoke(keys: KVNamespace, name: string): Promise<void> {
  const matching = (await storedKeys(keys)).filter((entry) => entry.name === name)
  if (matching.length === 0) {
    console.error(`no key named "${name}"`)
    process.exit(1)
  }
  for (const entry of matching) await keys.delete(entry.storageKey)
  console.log(`revoked ${matching.length} key(s) named "${name}"`)
}

async function list(keys: KVNamespace): Promise<void> {
  for (const entry of await storedKeys(keys)) {
    console.log(
      `${entry.name}\t${entry.createdAt}\t${entry.storageKey.slice(API_KEY_PREFIX.length, API_KEY_PREFIX.length + 12)}…`,
    )
  }
}

await main()
