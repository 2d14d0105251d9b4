// The worker's bindings (wrangler.toml) and its configuration, validated once per isolate with Zod so a
// bad variable fails every request with a message naming it instead of misbehaving.
import { z } from 'zod'
import { formatIssue, listIssues } from '../../shared/issues.ts'
import { MIN_SECRET_LENGTH } from '../../shared/request-signature.ts'
import { BACKEND_ROUTINGS, type BackendRouting } from './backends/failover.ts'
import type { IdempotencyRecord } from './idempotency/idempotency-record.ts'
import type { GenerationJob } from './jobs/generation-job.ts'
import type { KeyQuota } from './rate-limit/key-quota.ts'
import type { WebhookTargetPolicy } from './webhooks/webhook-target.ts'

export interface Env {
  GENERATION_JOB: DurableObjectNamespace<GenerationJob>
  KEY_QUOTA: DurableObjectNamespace<KeyQuota>
  IDEMPOTENCY: DurableObjectNamespace<IdempotencyRecord>
  RESULTS: R2Bucket
  API_KEYS: KVNamespace
  BACKEND_URLS: string
  /** Comma-separated relative capacities, one per BACKEND_URLS entry (load routing). */
  BACKEND_WEIGHTS?: string
  /** `load` (default) or `rotation`. */
  BACKEND_ROUTING?: string
  BACKEND_SECRET: string
  RESULT_KEY_SECRET: string
  CORS_ORIGINS?: string
  JOB_TIMEOUT_SECONDS?: string
  BACKEND_MAX_ATTEMPTS?: string
  HEARTBEAT_SECONDS?: string
  ALLOW_HTTP_WEBHOOKS?: string
  ALLOW_PRIVATE_WEBHOOKS?: string
  BACKEND_IDLE_TIMEOUT_SECONDS?: string
  EVENT_RETENTION_SECONDS?: string
  MAX_BODY_BYTES?: string
}

const commaList = z.string().transform((text) =>
  text
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean),
)
const seconds = (fallback: number) => z.coerce.number().positive().default(fallback)

const varsSchema = z.object({
  BACKEND_URLS: commaList.pipe(z.array(z.url({ protocol: /^https?$/ })).min(1)),
  BACKEND_WEIGHTS: commaList
    .pipe(z.array(z.coerce.number<string>().positive().max(1000)))
    .optional(),
  BACKEND_ROUTING: z.enum(BACKEND_ROUTINGS).default('load'),
  BACKEND_SECRET: z
    .string()
    .min(
      MIN_SECRET_LENGTH,
      `must be at least ${MIN_SECRET_LENGTH} characters (shared HMAC secret)`,
    ),
  RESULT_KEY_SECRET: z
    .string()
    .min(MIN_SECRET_LENGTH, `must be at least ${MIN_SECRET_LENGTH} characters (keys result URLs)`),
  CORS_ORIGINS: commaList.default([]),
  JOB_TIMEOUT_SECONDS: seconds(300),
  BACKEND_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
  HEARTBEAT_SECONDS: seconds(15),
  ALLOW_HTTP_WEBHOOKS: z.enum(['true', 'false']).default('false'),
  ALLOW_PRIVATE_WEBHOOKS: z.enum(['true', 'false']).default('false'),
  BACKEND_IDLE_TIMEOUT_SECONDS: seconds(45),
  EVENT_RETENTION_SECONDS: seconds(24 * 60 * 60),
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(16 * 1024),
})
const configSchema = varsSchema.refine(
  (vars) =>
    !vars.BACKEND_WEIGHTS?.length || vars.BACKEND_WEIGHTS.length === vars.BACKEND_URLS.length,
  {
    path: ['BACKEND_WEIGHTS'],
    message: 'must give one weight for each of BACKEND_URLS, in the same order',
  },
)

export interface Config {
  backendUrls: string[]
  /** Relative capacity of each backend, in backendUrls order; 1 each by default. */
  backendWeights: number[]
  /** How attempts pick a backend: by reported load (power of two choices) or the per-job rotation. */
  backendRouting: BackendRouting
  backendSecret: string
  resultKeySecret: string
  corsOrigins: string[]
  jobTimeoutMs: number
  backendMaxAttempts: number
  heartbeatMs: number
  /** Which webhook targets are accepted (edge/src/webhooks/webhook-target.ts). */
  webhookPolicy: WebhookTargetPolicy
  /** A backend stream silent this long (no event, no heartbeat) has stalled. */
  backendIdleTimeoutMs: number
  /** How long an ended job keeps its full event log before it is pruned to the terminal events. */
  eventRetentionMs: number
  maxBodyBytes: number
}

const parsed = new WeakMap<object, Config>()

/**
 * The validated configuration of this environment; throws naming each bad variable.
 *
 * @example
 * const { backendUrls, jobTimeoutMs } = readConfig(env)
 */
export function readConfig(env: Env): Config {
  const cached = parsed.get(env)
  if (cached) return cached
  const result = configSchema.safeParse(env)
  if (!result.success) {
    const lines = listIssues(result.error).map(formatIssue)
    throw new Error(`Invalid worker configuration:\n  ${lines.join('\n  ')}`)
  }
  const vars = result.data
  const config: Config = {
    backendUrls: vars.BACKEND_URLS.map((url) => url.replace(/\/+$/, '')),
    backendWeights: vars.BACKEND_WEIGHTS?.length
      ? vars.BACKEND_WEIGHTS
      : vars.BACKEND_URLS.map(() => 1),
    backendRouting: vars.BACKEND_ROUTING,
    backendSecret: vars.BACKEND_SECRET,
    resultKeySecret: vars.RESULT_KEY_SECRET,
    corsOrigins: vars.CORS_ORIGINS,
    jobTimeoutMs: vars.JOB_TIMEOUT_SECONDS * 1000,
    backendMaxAttempts: vars.BACKEND_MAX_ATTEMPTS,
    heartbeatMs: vars.HEARTBEAT_SECONDS * 1000,
    webhookPolicy: {
      allowHttp: vars.ALLOW_HTTP_WEBHOOKS === 'true',
      allowPrivate: vars.ALLOW_PRIVATE_WEBHOOKS === 'true',
    },
    backendIdleTimeoutMs: vars.BACKEND_IDLE_TIMEOUT_SECONDS * 1000,
    eventRetentionMs: vars.EVENT_RETENTION_SECONDS * 1000,
    maxBodyBytes: vars.MAX_BODY_BYTES,
  }
  parsed.set(env, config)
  return config
}
