// One Durable Object per API key: a token bucket for request rate and the set of the key's active jobs,
// both strongly consistent because each key's requests meet in one place.
import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env.ts'

export interface RatePolicy {
  /** Bucket size: requests allowed in a burst, refilled over `windowSeconds`. */
  limit: number
  windowSeconds: number
}

export interface RateDecision {
  allowed: boolean
  /** Whole requests left right now. */
  remaining: number
  /** Seconds until the bucket is full again (RateLimit `t`), or until one request is allowed when denied. */
  resetSeconds: number
}

export type JobSlot = { acquired: true } | { acquired: false; active: number }

export class KeyQuota extends DurableObject<Env> {
  #tokens = 0
  #updatedAt = 0

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        'CREATE TABLE IF NOT EXISTS active_jobs (job_id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)',
      )
      this.#tokens = ctx.storage.kv.get<number>('tokens') ?? Number.NaN
      this.#updatedAt = ctx.storage.kv.get<number>('updatedAt') ?? 0
    })
  }

  /** Takes one request from the bucket (token bucket, refilled continuously). */
  take(policy: RatePolicy, now = Date.now()): RateDecision {
    const ratePerMs = policy.limit / (policy.windowSeconds * 1000)
    const previous = Number.isNaN(this.#tokens) ? policy.limit : this.#tokens
    const refilled = Math.min(policy.limit, previous + (now - this.#updatedAt) * ratePerMs)
    const allowed = refilled >= 1
    const tokens = allowed ? refilled - 1 : refilled
    this.#tokens = tokens
    this.#updatedAt = now
    this.ctx.storage.kv.put('tokens', tokens)
    this.ctx.storage.kv.put('updatedAt', now)
    const msUntil = (level: number) => Math.max(0, Math.ceil((level - tokens) / ratePerMs / 1000))
    return {
      allowed,
      remaining: Math.floor(tokens),
      resetSeconds: allowed ? msUntil(policy.limit) : Math.max(1, msUntil(1)),
    }
  }

  /** Counts a job against the key's concurrent-jobs quota; idempotent per job id. */
  acquireJob(jobId: string, max: number, ttlMs: number, now = Date.now()): JobSlot {
    const sql = this.ctx.storage.sql
    sql.exec('DELETE FROM active_jobs WHERE expires_at <= ?', now)
    if (sql.exec('SELECT 1 FROM active_jobs WHERE job_id = ?', jobId).toArray().length > 0) {
      return { acquired: true }
    }
    const active = sql.exec<{ n: number }>('SELECT count(*) AS n FROM active_jobs').one().n
    if (active >= max) return { acquired: false, active }
    sql.exec('INSERT INTO active_jobs (job_id, expires_at) VALUES (?, ?)', jobId, now + ttlMs)
    return { acquired: true }
  }

  /** Frees the job's slot (the job ended, or never started). */
  releaseJob(jobId: string): void {
    this.ctx.storage.sql.exec('DELETE FROM active_jobs WHERE job_id = ?', jobId)
  }

  activeJobs(now = Date.now()): string[] {
    return this.ctx.storage.sql
      .exec<{ job_id: string }>('SELECT job_id FROM active_jobs WHERE expires_at > ?', now)
      .toArray()
      .map((row) => row.job_id)
  }
}
