// A job's event log in its Durable Object's SQLite storage: every public event gets the next integer id,
// which is also its SSE `id`, so a client that sends Last-Event-ID gets exactly what it missed.
//
// Bounded: only the latest `preview` is kept (a preview is a snapshot of the images so far, superseded by
// the next one; live subscribers still get every preview), steps are at most MAX_STEPS per attempt, and
// once a job has ended its log is pruned to its terminal events after a retention period. An event may
// have an audience (one owner): a cancel by one of several owners ends only that owner's streams.
import type { GenerationEventData, GenerationEventName } from '../../../shared/generation-api.ts'
import { formatSse } from '../../../shared/sse.ts'

export interface LoggedEvent {
  id: number
  event: GenerationEventName
  data: unknown
  /** The owner (API key id) this event is for; undefined for every owner. */
  audience?: string
}

/** Events that end a stream. */
export const TERMINAL_EVENTS: ReadonlySet<GenerationEventName> = new Set([
  'succeeded',
  'failed',
  'canceled',
])

type EventRow = { id: number; event: string; data: string; audience: string | null }

export class EventLog {
  readonly #sql: SqlStorage
  /** The stored preview, once known (looked up on the first preview after a restart). */
  #lastPreviewId: number | undefined

  constructor(sql: SqlStorage) {
    this.#sql = sql
  }

  /** Creates the table; only a job that is being created calls this (reads create no storage). */
  createSchema(): void {
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      event TEXT NOT NULL,
      data TEXT NOT NULL,
      at INTEGER NOT NULL,
      audience TEXT
    )`)
  }

  /** Appends an event and returns it with its id; a preview replaces the previous one. */
  append<Name extends GenerationEventName>(
    event: Name,
    data: GenerationEventData<Name>,
    options: { audience?: string; now?: number } = {},
  ): LoggedEvent {
    const row = this.#sql
      .exec<{ id: number }>(
        'INSERT INTO events (event, data, at, audience) VALUES (?, ?, ?, ?) RETURNING id',
        event,
        JSON.stringify(data),
        options.now ?? Date.now(),
        options.audience ?? null,
      )
      .one()
    if (event === 'preview') {
      // By id, not by a scan for older previews: a 1000-step run appends a preview per step.
      this.#lastPreviewId ??=
        this.#sql
          .exec<{ id: number | null }>(
            "SELECT max(id) AS id FROM events WHERE event = 'preview' AND id < ?",
            row.id,
          )
          .one().id ?? 0
      this.#sql.exec('DELETE FROM events WHERE id = ?', this.#lastPreviewId)
      this.#lastPreviewId = row.id
    }
    return {
      id: row.id,
      event,
      data,
      ...(options.audience === undefined ? {} : { audience: options.audience }),
    }
  }

  /**
   * Up to `limit` events after `afterId` and at most `upToId`, oldest first, that `owner` may see.
   * Streams read history in such pages, so a long log is never loaded at once.
   */
  page(afterId: number, owner: string, limit: number, upToId = Number.MAX_SAFE_INTEGER) {
    return this.#sql
      .exec<EventRow>(
        `SELECT id, event, data, audience FROM events
         WHERE id > ? AND id <= ? AND (audience IS NULL OR audience = ?)
         ORDER BY id LIMIT ?`,
        afterId,
        upToId,
        owner,
        limit,
      )
      .toArray()
      .map(
        (row): LoggedEvent => ({
          id: row.id,
          event: row.event as GenerationEventName,
          data: JSON.parse(row.data),
          ...(row.audience === null ? {} : { audience: row.audience }),
        }),
      )
  }

  /** The id the next event will get. */
  nextId(): number {
    const row = this.#sql.exec<{ id: number | null }>('SELECT max(id) AS id FROM events').one()
    return (row.id ?? 0) + 1
  }

  /** Deletes every event but the terminal ones (what a stream of an ended job still needs). */
  prune(): number {
    return this.#sql.exec(
      "DELETE FROM events WHERE event NOT IN ('succeeded', 'failed', 'canceled')",
    ).rowsWritten
  }

  /** Rows and bytes of event data stored, for measurements. */
  size(): { events: number; dataBytes: number } {
    const row = this.#sql
      .exec<{ events: number; bytes: number | null }>(
        'SELECT count(*) AS events, sum(length(data)) AS bytes FROM events',
      )
      .one()
    return { events: row.events, dataBytes: row.bytes ?? 0 }
  }
}

/** An event as SSE wire text. */
export function eventText(event: LoggedEvent): string {
  return formatSse({ event: event.event, id: String(event.id), data: event.data })
}
