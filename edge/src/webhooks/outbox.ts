// A job's webhook outbox in its Durable Object's SQLite storage: endpoints registered while the job
// runs, sealed with the final message when it ends, then delivered and retried with backoff from the
// object's alarm until each endpoint answers 2xx or the schedule runs out.
import { deliverWebhook, nextAttemptAt } from './delivery.ts'

type DueRow = {
  id: number
  url: string
  secret: string
  message_id: string
  body: string
  attempts: number
}

export class WebhookOutbox {
  readonly #sql: SqlStorage

  constructor(sql: SqlStorage) {
    this.#sql = sql
    sql.exec(`CREATE TABLE IF NOT EXISTS webhooks (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      url TEXT NOT NULL,
      secret TEXT NOT NULL,
      message_id TEXT,
      body TEXT,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_at INTEGER,
      delivered_at INTEGER
    )`)
  }

  /** Adds an endpoint for the job's end, once per URL and secret. */
  register(url: string, secret: string): void {
    const pending = this.#sql
      .exec('SELECT 1 FROM webhooks WHERE body IS NULL AND url = ? AND secret = ?', url, secret)
      .toArray()
    if (pending.length === 0) {
      this.#sql.exec('INSERT INTO webhooks (url, secret) VALUES (?, ?)', url, secret)
    }
  }

  /** Gives every registered endpoint the final message, due at `now`. */
  seal(messageId: string, body: string, now: number): void {
    this.#sql.exec(
      'UPDATE webhooks SET message_id = ?, body = ?, next_at = ? WHERE body IS NULL',
      messageId,
      body,
      now,
    )
  }

  /** When the next delivery is due, or null when none is. */
  nextAttemptAt(): number | null {
    return this.#sql
      .exec<{ at: number | null }>(
        'SELECT min(next_at) AS at FROM webhooks WHERE next_at IS NOT NULL',
      )
      .one().at
  }

  /** Delivers every due message once; failures are rescheduled by the backoff schedule. */
  async deliverDue(now: number): Promise<void> {
    const due = this.#sql
      .exec<DueRow>(
        'SELECT id, url, secret, message_id, body, attempts FROM webhooks WHERE next_at <= ?',
        now,
      )
      .toArray()
    // Claim the rows first so a concurrent call (alarm and job end) cannot send them twice.
    for (const row of due) this.#sql.exec('UPDATE webhooks SET next_at = NULL WHERE id = ?', row.id)
    await Promise.all(
      due.map(async (row) => {
        const delivered = await deliverWebhook({
          messageId: row.message_id,
          url: row.url,
          secret: row.secret,
          body: row.body,
        })
        const attempts = row.attempts + 1
        if (delivered) {
          this.#sql.exec(
            'UPDATE webhooks SET attempts = ?, delivered_at = ? WHERE id = ?',
            attempts,
            Date.now(),
            row.id,
          )
        } else {
          this.#sql.exec(
            'UPDATE webhooks SET attempts = ?, next_at = ? WHERE id = ?',
            attempts,
            nextAttemptAt(attempts, Date.now()),
            row.id,
          )
        }
      }),
    )
  }

  /** Delivery state per endpoint, for tests and diagnostics. */
  list(): { url: string; attempts: number; nextAt: number | null; deliveredAt: number | null }[] {
    return this.#sql
      .exec<{ url: string; attempts: number; next_at: number | null; delivered_at: number | null }>(
        'SELECT url, attempts, next_at, delivered_at FROM webhooks ORDER BY id',
      )
      .toArray()
      .map((row) => ({
        url: row.url,
        attempts: row.attempts,
        nextAt: row.next_at,
        deliveredAt: row.delivered_at,
      }))
  }
}
