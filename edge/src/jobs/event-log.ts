// A job's event log: every public event gets the next integer id, which is also its SSE `id`, so a client
// that sends Last-Event-ID gets exactly what it missed.
//
// Record and progress are kept apart. What a job was told and how it ended (queued, started, retrying and
// the terminal events) is stored in its Durable Object's SQLite storage. Progress (`step`, `preview`) lives
// in the object's memory only: a stored write holds every message the object sends until it is flushed
// (the output gate), so storing each step made every SSE step wait for a disk commit and cost the CPU the
// run needed (see docs/bench/edge.md), and a restart begins a new attempt at step 0 anyway, so a stored
// step has nothing to resume. Progress stays readable (late subscribers, Last-Event-ID) while the object
// is in memory, which it is for as long as it drives the run.
//
// Ids never repeat, across restarts too: they are reserved in blocks in storage (one small write per
// block, in the same commit as the event that needed it), so an id given to an event that only lived in
// memory is never given again by a restarted object; it starts after the last reserved block.
//
// Bounded: only the latest `preview` is kept, at most MAX_PROGRESS_EVENTS progress events are held (a
// 1000-step run's steps and its preview; the oldest go first), and once a job has ended its log is pruned
// to its terminal events after a retention period. An event may have an audience (one owner): a cancel by
// one of several owners ends only that owner's streams.
import type { GenerationEventData, GenerationEventName } from '../../../shared/generation-api.ts'
import { MAX_STEPS } from '../../../shared/sampling-options.ts'
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

/** Progress events: held in memory, never stored (see the top of this file). */
export const PROGRESS_EVENTS: ReadonlySet<GenerationEventName> = new Set(['step', 'preview'])

/** Progress events held at once: every step of the longest run the API accepts, and one preview. */
export const MAX_PROGRESS_EVENTS = MAX_STEPS + 1

/** Ids reserved per storage write: one block covers a whole 1000-step run with its stored events. */
export const ID_BLOCK = 2048

type EventRow = { id: number; event: string; data: string; audience: string | null }

export class EventLog {
  readonly #sql: SqlStorage
  /** Progress events, oldest first, all with ids above every stored event's id before them. */
  readonly #progress: LoggedEvent[] = []
  /** The next id to give, and the last id reserved in storage; read on first use. */
  #ids: { next: number; reserved: number } | undefined

  constructor(sql: SqlStorage) {
    this.#sql = sql
  }

  /** Creates the tables; only a job that is being created calls this (reads create no storage). */
  createSchema(): void {
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      event TEXT NOT NULL,
      data TEXT NOT NULL,
      at INTEGER NOT NULL,
      audience TEXT
    )`)
    this.#sql.exec(
      'CREATE TABLE IF NOT EXISTS event_ids (id INTEGER PRIMARY KEY CHECK (id = 1), reserved INTEGER NOT NULL)',
    )
  }

  /**
   * Appends an event and returns it with its id: a progress event in memory (a preview replaces the
   * previous one), any other in storage.
   */
  append<Name extends GenerationEventName>(
    event: Name,
    data: GenerationEventData<Name>,
    options: { audience?: string; now?: number } = {},
  ): LoggedEvent {
    const logged: LoggedEvent = {
      id: this.#takeId(),
      event,
      data,
      ...(options.audience === undefined ? {} : { audience: options.audience }),
    }
    if (PROGRESS_EVENTS.has(event)) {
      this.#hold(logged)
    } else {
      this.#sql.exec(
        'INSERT INTO events (id, event, data, at, audience) VALUES (?, ?, ?, ?, ?)',
        logged.id,
        event,
        JSON.stringify(data),
        options.now ?? Date.now(),
        options.audience ?? null,
      )
    }
    return logged
  }

  /**
   * Up to `limit` events after `afterId` and at most `upToId`, oldest first, that `owner` may see: stored
   * and held ones in id order. Streams read history in such pages, so a long log is never loaded at once.
   */
  page(afterId: number, owner: string, limit: number, upToId = Number.MAX_SAFE_INTEGER) {
    const stored = this.#sql
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
    const held = this.#progress.filter((event) => event.id > afterId && event.id <= upToId)
    return mergeById(stored, held).slice(0, limit)
  }

  /** The id the next event will get. */
  nextId(): number {
    return this.#readIds().next
  }

  /** Deletes every event but the terminal ones (what a stream of an ended job still needs). */
  prune(): number {
    const held = this.#progress.length
    this.#progress.length = 0
    return (
      held +
      this.#sql.exec("DELETE FROM events WHERE event NOT IN ('succeeded', 'failed', 'canceled')")
        .rowsWritten
    )
  }

  /** Stored rows and bytes of event data, and the progress events held in memory, for measurements. */
  size(): { events: number; dataBytes: number; heldEvents: number } {
    const row = this.#sql
      .exec<{ events: number; bytes: number | null }>(
        'SELECT count(*) AS events, sum(length(data)) AS bytes FROM events',
      )
      .one()
    return { events: row.events, dataBytes: row.bytes ?? 0, heldEvents: this.#progress.length }
  }

  #hold(event: LoggedEvent): void {
    if (event.event === 'preview') {
      const previous = this.#progress.findIndex((held) => held.event === 'preview')
      if (previous >= 0) this.#progress.splice(previous, 1)
    }
    this.#progress.push(event)
    if (this.#progress.length > MAX_PROGRESS_EVENTS) this.#progress.shift()
  }

  /** The next id; reserves the next block in storage first when this one is used up. */
  #takeId(): number {
    const ids = this.#readIds()
    if (ids.next > ids.reserved) {
      ids.reserved = ids.next + ID_BLOCK - 1
      this.#sql.exec('INSERT OR REPLACE INTO event_ids (id, reserved) VALUES (1, ?)', ids.reserved)
    }
    return ids.next++
  }

  /**
   * Where ids continue: after the last reserved block, which covers every id an earlier instance gave
   * (stored or held). A log written before reservations existed continues after its highest id, stored
   * or deleted (SQLite's AUTOINCREMENT counter).
   */
  #readIds(): { next: number; reserved: number } {
    if (this.#ids) return this.#ids
    const reserved =
      this.#sql.exec<{ reserved: number }>('SELECT reserved FROM event_ids').toArray()[0]
        ?.reserved ??
      this.#sql
        .exec<{ seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        .toArray()[0]?.seq ??
      0
    this.#ids = { next: reserved + 1, reserved }
    return this.#ids
  }
}

/** Two id-ordered lists as one. */
function mergeById(a: readonly LoggedEvent[], b: readonly LoggedEvent[]): LoggedEvent[] {
  const merged: LoggedEvent[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    const next =
      j >= b.length || (i < a.length && (a[i] as LoggedEvent).id < (b[j] as LoggedEvent).id)
    merged.push((next ? a[i++] : b[j++]) as LoggedEvent)
  }
  return merged
}

/** An event as SSE wire text. */
export function eventText(event: LoggedEvent): string {
  return formatSse({ event: event.event, id: String(event.id), data: event.data })
}
