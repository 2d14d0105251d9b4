// One Durable Object per API key: a token bucket for request rate and the set of the key's active jobs
// with what each costs (rows x steps), both strongly consistent because each key's requests meet in one
// place. Bounded: a key holds at most its concurrent-jobs limit of rows, and expired slots are deleted.
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

export interface JobLimits {
  /** Jobs at once. */
  maxJobs: number
  /** Row-steps (runCost) of all jobs at once. */
  maxCost: number
  /** A slot not released by then is forgotten (a job that vanished must not hold it forever). */
  ttlMs: number
}

export type JobSlot =
  | { acquired: true }
  | { acquired: false; reason: 'jobs' | 'cost'; active: number; activeCost: number }

export class KeyQuota extends DurableObject<Env> {
  #tokens = 0
  #updatedAt = 0

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        `CREATE TABLE IF NOT EXISTS active_jobs (
          job_id TEXT PRIMARY KEY,
          expires_at INTEGER NOT NULL,
          cost INTEGER NOT NULL DEFAULT 0
        )`,
      )
      // Tables of the first version lack the cost column.
      const columns = ctx.storage.sql
        .exec<{ name: string }>("SELECT name FROM pragma_table_info('active_jobs')")
        .toArray()
      if (!columns.some((column) => column.name === 'cost')) {
        ctx.storage.sql.exec('ALTER TABLE active_jobs ADD COLUMN cost INTEGER NOT NULL DEFAULT 0')
      }
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
    // Stored without holding the answer for the commit (every API request waits on this call): the bucket
    // in memory decides while the object lives, and a crash can forget only the last few takes, which
    // lets the key a few requests more, never fewer. The slots below are stored before they answer.
    // storage.put writes the same keys the constructor reads with kv.get; only it takes allowUnconfirmed.
    this.ctx.storage
      .put({ tokens, updatedAt: now }, { allowUnconfirmed: true })
      .catch((error: unknown) => {
        console.error(
          JSON.stringify({ level: 'error', msg: 'rate bucket not stored', error: String(error) }),
        )
      })
    const msUntil = (level: number) => Math.max(0, Math.ceil((level - tokens) / ratePerMs / 1000))
    return {
      allowed,
      remaining: Math.floor(tokens),
      resetSeconds: allowed ? msUntil(policy.limit) : Math.max(1, msUntil(1)),
    }
  }

  /**
   * Counts a job of `cost` row-steps against the key's quotas (jobs at once, cost at once); idempotent
   * per job id. Refused when either would be exceeded.
   */
  acquireJob(jobId: string, cost: number, limits: JobLimits, now = Date.now()): JobSlot {
    const sql = this.ctx.storage.sql
    sql.exec('DELETE FROM active_jobs WHERE expires_at <= ?', now)
    if (sql.exec('SELECT 1 FROM active_jobs WHERE job_id = ?', jobId).toArray().length > 0) {
      return { acquired: true }
    }
    const held = sql
      .exec<{ n: number; cost: number | null }>(
        'SELECT count(*) AS n, sum(cost) AS cost FROM active_jobs',
      )
      .one()
    const active = held.n
    const activeCost = held.cost ?? 0
    if (active >= limits.maxJobs) return { acquired: false, reason: 'jobs', active, activeCost }
    if (activeCost + cost > limits.maxCost) {
      return { acquired: false, reason: 'cost', active, activeCost }
    }
    sql.exec(
      'INSERT INTO active_jobs (job_id, expires_at, cost) VALUES (?, ?, ?)',
      jobId,
      now + limits.ttlMs,
      cost,
    )
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
