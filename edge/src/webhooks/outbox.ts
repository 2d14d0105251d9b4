// A job's webhook outbox in its Durable Object's SQLite storage. Each owner (API key) of the job may
// register one endpoint per URL; when the job ends for that owner (its own cancel, or the end of the run
// it followed) its endpoints are sealed with the message for the outcome it saw, then delivered from the
// object's alarm and retried with backoff until each answers 2xx or the schedule runs out.
//
// Nothing is lost to a crash: a delivery claims its row with a lease instead of unscheduling it, so a
// row whose delivery never reported back is due again once the lease has passed. Bounded: at most
// MAX_ENDPOINTS_PER_RUN pending endpoints, and finished rows are pruned with the job's event log.
import { DELIVERY_TIMEOUT_MS, deliverWebhook, nextAttemptAt } from './delivery.ts'
import type { WebhookTargetPolicy } from './webhook-target.ts'

/** Endpoints waiting for one run's end, over all owners. */
export const MAX_ENDPOINTS_PER_RUN = 16
/** How long a claimed delivery may take before the row is due again (the attempt counts as failed). */
export const DELIVERY_LEASE_MS = DELIVERY_TIMEOUT_MS + 20_000

type DueRow = {
  id: number
  url: string
  secret: string
  message_id: string
  body: string
  attempts: number
}

export interface WebhookMessageBody {
  messageId: string
  body: string
}

export class WebhookOutbox {
  readonly #sql: SqlStorage

  constructor(sql: SqlStorage) {
    this.#sql = sql
  }

  /** Creates the table; only a job that is being created calls this (reads create no storage). */
  createSchema(): void {
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS webhooks (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      owner TEXT NOT NULL,
      url TEXT NOT NULL,
      secret TEXT NOT NULL,
      message_id TEXT,
      body TEXT,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_at INTEGER,
      lease_until INTEGER,
      delivered_at INTEGER,
      given_up_at INTEGER
    )`)
  }

  /**
   * Adds an endpoint of `owner` for the end of the job, once per owner and URL. False when the run
   * already has MAX_ENDPOINTS_PER_RUN pending endpoints (the caller answers with a problem).
   */
  register(owner: string, url: string, secret: string): boolean {
    const pending = this.#sql
      .exec<{ owner: string; url: string }>('SELECT owner, url FROM webhooks WHERE body IS NULL')
      .toArray()
    if (pending.some((row) => row.owner === owner && row.url === url)) return true
    if (pending.length >= MAX_ENDPOINTS_PER_RUN) return false
    this.#sql.exec('INSERT INTO webhooks (owner, url, secret) VALUES (?, ?, ?)', owner, url, secret)
    return true
  }

  /** Gives `owner`'s pending endpoints their final message, due at `now`. */
  seal(owner: string, message: WebhookMessageBody, now: number): void {
    this.#sql.exec(
      'UPDATE webhooks SET message_id = ?, body = ?, next_at = ? WHERE body IS NULL AND owner = ?',
      message.messageId,
      message.body,
      now,
      owner,
    )
  }

  /** When the next delivery is due (a retry, or a lease running out), or null when none is. */
  nextAttemptAt(): number | null {
    return this.#sql
      .exec<{ at: number | null }>(
        `SELECT min(max(next_at, coalesce(lease_until, 0))) AS at FROM webhooks
         WHERE next_at IS NOT NULL`,
      )
      .one().at
  }

  /** Delivers every due message once; failures are rescheduled by the backoff schedule. */
  async deliverDue(now: number, policy: WebhookTargetPolicy): Promise<void> {
    const due = this.#sql
      .exec<DueRow>(
        `SELECT id, url, secret, message_id, body, attempts FROM webhooks
         WHERE next_at <= ? AND (lease_until IS NULL OR lease_until <= ?)`,
        now,
        now,
      )
      .toArray()
    // Claim with a lease first: a concurrent call (the alarm and a job's end) cannot send a row twice,
    // and a crash mid-delivery leaves the row due again when the lease ends.
    for (const row of due) {
      this.#sql.exec(
        'UPDATE webhooks SET lease_until = ?, attempts = attempts + 1 WHERE id = ?',
        now + DELIVERY_LEASE_MS,
        row.id,
      )
    }
    await Promise.all(
      due.map(async (row) => {
        const outcome = await deliverWebhook(
          { messageId: row.message_id, url: row.url, secret: row.secret, body: row.body },
          policy,
        )
        const attempts = row.attempts + 1
        const at = Date.now()
        if (outcome.delivered) {
          this.#sql.exec(
            'UPDATE webhooks SET delivered_at = ?, next_at = NULL, lease_until = NULL WHERE id = ?',
            at,
            row.id,
          )
          return
        }
        const retryAt = outcome.permanent ? null : nextAttemptAt(attempts, at)
        this.#sql.exec(
          `UPDATE webhooks SET next_at = ?, lease_until = NULL,
           given_up_at = CASE WHEN ? IS NULL THEN ? ELSE NULL END WHERE id = ?`,
          retryAt,
          retryAt,
          at,
          row.id,
        )
      }),
    )
  }

  /** Deletes rows that are done (delivered or given up); what is still pending or due stays. */
  prune(): void {
    this.#sql.exec('DELETE FROM webhooks WHERE delivered_at IS NOT NULL OR given_up_at IS NOT NULL')
  }

  /** Delivery state per endpoint, for tests and diagnostics. */
  list(): {
    owner: string
    url: string
    attempts: number
    nextAt: number | null
    leaseUntil: number | null
    deliveredAt: number | null
    givenUpAt: number | null
  }[] {
    return this.#sql
      .exec<{
        owner: string
        url: string
        attempts: number
        next_at: number | null
        lease_until: number | null
        delivered_at: number | null
        given_up_at: number | null
      }>(
        'SELECT owner, url, attempts, next_at, lease_until, delivered_at, given_up_at FROM webhooks ORDER BY id',
      )
      .toArray()
      .map((row) => ({
        owner: row.owner,
        url: row.url,
        attempts: row.attempts,
        nextAt: row.next_at,
        leaseUntil: row.lease_until,
        deliveredAt: row.delivered_at,
        givenUpAt: row.given_up_at,
      }))
  }
}
