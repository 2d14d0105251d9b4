// A job's event log in its Durable Object's SQLite storage: every public event gets the next integer id,
// which is also its SSE `id`, so a client that sends Last-Event-ID gets exactly what it missed.
import type { GenerationEventData, GenerationEventName } from '../../../shared/generation-api.ts'
import { formatSse } from '../../../shared/sse.ts'

export interface LoggedEvent {
  id: number
  event: GenerationEventName
  data: unknown
}

type EventRow = { id: number; event: string; data: string }

export class EventLog {
  readonly #sql: SqlStorage

  constructor(sql: SqlStorage) {
    this.#sql = sql
    sql.exec(`CREATE TABLE IF NOT EXISTS events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      event TEXT NOT NULL,
      data TEXT NOT NULL,
      at INTEGER NOT NULL
    )`)
  }

  /** Appends an event and returns it with its id. */
  append<Name extends GenerationEventName>(
    event: Name,
    data: GenerationEventData<Name>,
    now = Date.now(),
  ): LoggedEvent {
    const row = this.#sql
      .exec<{ id: number }>(
        'INSERT INTO events (event, data, at) VALUES (?, ?, ?) RETURNING id',
        event,
        JSON.stringify(data),
        now,
      )
      .one()
    return { id: row.id, event, data }
  }

  /** Events with an id above `afterId`, oldest first. */
  after(afterId: number): LoggedEvent[] {
    return this.#sql
      .exec<EventRow>('SELECT id, event, data FROM events WHERE id > ? ORDER BY id', afterId)
      .toArray()
      .map((row) => ({
        id: row.id,
        event: row.event as GenerationEventName,
        data: JSON.parse(row.data),
      }))
  }

  /** The id the next event will get. */
  nextId(): number {
    const row = this.#sql.exec<{ id: number | null }>('SELECT max(id) AS id FROM events').one()
    return (row.id ?? 0) + 1
  }
}

/** An event as SSE wire text. */
export function eventText(event: LoggedEvent): string {
  return formatSse({ event: event.event, id: String(event.id), data: event.data })
}
