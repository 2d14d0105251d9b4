// The service's configuration: every setting from an environment variable, validated with Zod at start-up.
// A bad value is a ConfigError whose lines name the variable, so `npm run gpu-service` can say what to fix.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { MIN_SECRET_LENGTH } from '../../../shared/request-signature.ts'
import { MAX_COUNT } from '../../../shared/sampling-options.ts'
import { EXECUTION_PROVIDERS } from '../onnx/execution-providers.ts'
import type { SessionConfig } from '../onnx/session.ts'
import type { SchedulerLimits } from '../scheduler/step-scheduler.ts'

/** 8787 is wrangler's; the service listens next to it. */
export const DEFAULT_PORT = 8788
/** Where local development keeps the generated edge <-> service secret. */
export const DEV_SECRET_FILE = 'hmac-secret'

const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().min(min).max(max))

/**
 * The ONNX session's variables; the only place DUALRATE_DEVICE, the thread counts and thread spinning are
 * read.
 */
const sessionEnvSchema = z.object({
  DUALRATE_DEVICE: z.enum(Object.keys(EXECUTION_PROVIDERS) as [string, ...string[]]).default('cpu'),
  DUALRATE_INTRA_OP_THREADS: wholeNumber(1).optional(),
  DUALRATE_INTER_OP_THREADS: wholeNumber(1).optional(),
  // Off by default: a spinning intra-op thread holds a core while the service's main thread writes
  // events and answers HTTP between model calls, and while other processes wait for it. On the 2-core
  // benchmark machine the service did 11.3-11.5 images/s at concurrency 16 with spinning off against
  // 9.4-10.2 with it on, while the sampler alone was as fast either way (bench client, 2026-12-01).
  DUALRATE_INTRA_OP_SPINNING: z.enum(['on', 'off']).default('off'),
})

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  PORT: wholeNumber(0, 65_535).default(DEFAULT_PORT),
  HOST: z.string().min(1).default('127.0.0.1'),
  DUALRATE_MODELS_DIR: z.string().min(1).default('gpu-service/models'),
  /** Shared with the edge; required in production, generated into DUALRATE_DEV_DIR otherwise. */
  DUALRATE_HMAC_SECRET: z
    .string()
    .min(MIN_SECRET_LENGTH, `must be at least ${MIN_SECRET_LENGTH} characters`)
    .optional(),
  DUALRATE_DEV_DIR: z.string().min(1).default('.dev'),
  ...sessionEnvSchema.shape,
  DUALRATE_BATCHING: z.enum(['on', 'off']).default('on'),
  // Every valid request (count up to MAX_COUNT, guided: two rows an image) must fit one call.
  DUALRATE_MAX_BATCH_ROWS: wholeNumber(2 * MAX_COUNT).default(2 * MAX_COUNT),
  /** Default: two full model calls, so a maximum-size run leaves room for others beside it. */
  DUALRATE_MAX_ACTIVE_ROWS: wholeNumber(2 * MAX_COUNT).optional(),
  DUALRATE_MAX_ACTIVE_RUNS: wholeNumber(1).default(16),
  DUALRATE_MAX_QUEUED_RUNS: wholeNumber(0).default(64),
  DUALRATE_RUN_DEADLINE_MS: wholeNumber(1).default(120_000),
  /** Kubernetes waits 30 s after SIGTERM by default; finish inside that. */
  DUALRATE_DRAIN_GRACE_MS: wholeNumber(0).default(25_000),
  DUALRATE_HEARTBEAT_MS: wholeNumber(100).default(15_000),
})

export interface ServiceConfig {
  production: boolean
  port: number
  host: string
  modelsDir: string
  /** Undefined outside production when none is set: resolveHmacSecret generates one. */
  hmacSecret: string | undefined
  devDir: string
  session: SessionConfig
  scheduler: SchedulerLimits
  drainGraceMs: number
  heartbeatMs: number
}

/** A bad environment; `message` has one `VARIABLE: problem` line per problem. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Validates the environment. Empty variables count as unset.
 *
 * @example
 * const config = parseServiceConfig(process.env) // throws ConfigError('PORT: expected a whole number')
 */
export function parseServiceConfig(env: Record<string, string | undefined>): ServiceConfig {
  const vars = parseEnv(envSchema, env)
  const production = vars.NODE_ENV === 'production'
  if (production && vars.DUALRATE_HMAC_SECRET === undefined) {
    throw new ConfigError('DUALRATE_HMAC_SECRET: required when NODE_ENV is production')
  }
  const maxActiveRows = vars.DUALRATE_MAX_ACTIVE_ROWS ?? 2 * vars.DUALRATE_MAX_BATCH_ROWS
  if (maxActiveRows < vars.DUALRATE_MAX_BATCH_ROWS) {
    throw new ConfigError(
      `DUALRATE_MAX_ACTIVE_ROWS: must be at least DUALRATE_MAX_BATCH_ROWS (${vars.DUALRATE_MAX_BATCH_ROWS})`,
    )
  }
  const session = sessionConfigOf(vars)
  return {
    production,
    port: vars.PORT,
    host: vars.HOST,
    modelsDir: vars.DUALRATE_MODELS_DIR,
    hmacSecret: vars.DUALRATE_HMAC_SECRET,
    devDir: vars.DUALRATE_DEV_DIR,
    session,
    scheduler: {
      maxBatchRows: vars.DUALRATE_MAX_BATCH_ROWS,
      maxActiveRows,
      maxActiveRuns: vars.DUALRATE_MAX_ACTIVE_RUNS,
      maxQueuedRuns: vars.DUALRATE_MAX_QUEUED_RUNS,
      runDeadlineMs: vars.DUALRATE_RUN_DEADLINE_MS,
      batching: vars.DUALRATE_BATCHING === 'on',
    },
    drainGraceMs: vars.DUALRATE_DRAIN_GRACE_MS,
    heartbeatMs: vars.DUALRATE_HEARTBEAT_MS,
  }
}

/**
 * The ONNX session settings alone (DUALRATE_DEVICE, DUALRATE_INTRA_OP_THREADS,
 * DUALRATE_INTER_OP_THREADS, DUALRATE_INTRA_OP_SPINNING), validated as parseServiceConfig validates them, for the command-line tools
 * that load the models without the service.
 *
 * @example
 * const pair = await loadModelPair('gpu-service/models', parseSessionConfig(process.env))
 */
export function parseSessionConfig(env: Record<string, string | undefined>): SessionConfig {
  return sessionConfigOf(parseEnv(sessionEnvSchema, env))
}

/** Parses the set (non-empty) variables with `schema`; a ConfigError lists every bad one. */
function parseEnv<Schema extends z.ZodType>(
  schema: Schema,
  env: Record<string, string | undefined>,
): z.infer<Schema> {
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''))
  const parsed = schema.safeParse(set)
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)
    throw new ConfigError(lines.join('\n'))
  }
  return parsed.data
}

function sessionConfigOf(vars: z.infer<typeof sessionEnvSchema>): SessionConfig {
  const session: SessionConfig = {
    device: vars.DUALRATE_DEVICE,
    intraOpSpinning: vars.DUALRATE_INTRA_OP_SPINNING === 'on',
  }
  if (vars.DUALRATE_INTRA_OP_THREADS !== undefined) {
    session.intraOpThreads = vars.DUALRATE_INTRA_OP_THREADS
  }
  if (vars.DUALRATE_INTER_OP_THREADS !== undefined) {
    session.interOpThreads = vars.DUALRATE_INTER_OP_THREADS
  }
  return session
}

/**
 * The configured secret, or in development the one in `<devDir>/hmac-secret`, generated on first use so
 * that `wrangler dev` can read the same file.
 *
 * @example
 * const secret = await resolveHmacSecret(config)
 */
export async function resolveHmacSecret(
  config: Pick<ServiceConfig, 'hmacSecret' | 'devDir'>,
): Promise<{ secret: string; source: 'env' | 'dev-file' | 'generated' }> {
  if (config.hmacSecret !== undefined) return { secret: config.hmacSecret, source: 'env' }
  const path = join(config.devDir, DEV_SECRET_FILE)
  try {
    const secret = (await readFile(path, 'utf8')).trim()
    if (secret.length >= MIN_SECRET_LENGTH) return { secret, source: 'dev-file' }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const secret = randomBytes(32).toString('hex')
  await mkdir(config.devDir, { recursive: true })
  await writeFile(path, `${secret}\n`, { mode: 0o600 })
  return { secret, source: 'generated' }
}
