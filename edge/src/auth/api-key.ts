// API keys: how they look, how they are stored (only a SHA-256 of the key, in KV, beside its name and
// limits) and how a presented key is looked up. Shared by the worker and the key script.
import { z } from 'zod'
import { sha256Hex } from '../../../shared/crypto.ts'
import { MAX_RUN_COST } from '../../../shared/sampling-options.ts'

/** Stored keys live under this prefix in the API_KEYS namespace, followed by the key's SHA-256. */
export const API_KEY_PREFIX = 'key:'
const KEY_PATTERN = /^dr_[A-Za-z0-9_-]{43}$/

export const apiKeyLimitsSchema = z.strictObject({
  /** Requests per minute across the authenticated API. */
  requestsPerMinute: z.number().int().positive(),
  /** Jobs queued or running at once. */
  concurrentJobs: z.number().int().positive(),
  /**
   * Row-steps (rows x steps, see runCost) of the key's jobs at once, so one key's largest requests
   * weigh what they cost. At least the largest request, so every valid request can run; keys made
   * before this limit existed get the default.
   */
  concurrentCost: z.number().int().min(MAX_RUN_COST).default(MAX_RUN_COST),
})

export const apiKeyRecordSchema = z.strictObject({
  name: z.string().min(1).max(100),
  createdAt: z.iso.datetime(),
  limits: apiKeyLimitsSchema,
  /** Standard Webhooks signing secret (`whsec_` + base64) for this key's webhooks. */
  webhookSecret: z.string().regex(/^whsec_[A-Za-z0-9+/]+=*$/),
})
export type ApiKeyLimits = z.infer<typeof apiKeyLimitsSchema>
export type ApiKeyLimitsInput = z.input<typeof apiKeyLimitsSchema>
export type ApiKeyRecord = z.infer<typeof apiKeyRecordSchema>

/** An authenticated caller: the stored record plus the key's hash, which names it everywhere else. */
export type ApiKeyIdentity = ApiKeyRecord & { id: string }

export const DEFAULT_LIMITS: ApiKeyLimits = {
  requestsPerMinute: 60,
  concurrentJobs: 4,
  concurrentCost: MAX_RUN_COST,
}

function base64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/, '')
}

/**
 * A new key (shown once) and the record to store under its hash.
 *
 * @example
 * const { key, storageKey, record } = await createApiKey('dev')
 * await env.API_KEYS.put(storageKey, JSON.stringify(record))
 */
export async function createApiKey(
  name: string,
  limits: ApiKeyLimitsInput = DEFAULT_LIMITS,
  now = new Date(),
): Promise<{ key: string; storageKey: string; record: ApiKeyRecord }> {
  const key = `dr_${base64Url(crypto.getRandomValues(new Uint8Array(32)))}`
  const webhookSecret = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))))}`
  const record = apiKeyRecordSchema.parse({
    name,
    createdAt: now.toISOString(),
    limits,
    webhookSecret,
  })
  return { key, storageKey: API_KEY_PREFIX + (await hashApiKey(key)), record }
}

/** The part of a KV namespace the lookup needs (the key script runs in Node, outside workerd's types). */
export interface KeyStore {
  get(key: string, options: { type: 'json'; cacheTtl?: number }): Promise<unknown>
}

/** SHA-256 of the key, hex: the only form the key is stored in. */
export function hashApiKey(key: string): Promise<string> {
  return sha256Hex(key)
}

/**
 * Looks a presented key up by its hash. No stored secret is ever compared byte by byte, so the time
 * taken says nothing about how close a guess was.
 */
export async function findApiKey(
  keys: KeyStore,
  presented: string,
): Promise<ApiKeyIdentity | null> {
  if (!KEY_PATTERN.test(presented)) return null
  const id = await hashApiKey(presented)
  const stored = await keys.get(API_KEY_PREFIX + id, { type: 'json', cacheTtl: 60 })
  const record = apiKeyRecordSchema.safeParse(stored)
  return record.success ? { ...record.data, id } : null
}
