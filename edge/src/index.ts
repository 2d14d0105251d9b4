// The worker's entry point: the API app, and the Durable Object classes wrangler.toml binds.
import { app } from './app.ts'
import type { Env } from './env.ts'

export { IdempotencyRecord } from './idempotency/idempotency-record.ts'
export { GenerationJob } from './jobs/generation-job.ts'
export { KeyQuota } from './rate-limit/key-quota.ts'

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>
