// The SSE subscribers of one job. Each gets its own pull-driven stream: its history is read from the
// event log a page at a time as the client takes it (never all at once), then it follows live events.
// Bounded on every side: subscribers per job and per owner are capped, a heartbeat comment keeps idle
// connections open through proxies, and a subscriber whose unread bytes pass a limit is dropped with a
// clear comment line and a close, after which it can resume with Last-Event-ID (the log has it all).
import { SSE_HEARTBEAT } from '../../../shared/sse.ts'
import { eventText, type LoggedEvent, TERMINAL_EVENTS } from './event-log.ts'

const encoder = new TextEncoder()

export interface SubscriberLimits {
  heartbeatMs: number
  /** Streams open at once on one job, over all owners. */
  maxPerJob: number
  /** Streams open at once on one job for one owner. */
  maxPerOwner: number
  /** Events read from storage per page. */
  pageSize: number
  /** Unread bytes queued for one subscriber before it counts as lagging and is dropped. */
  lagLimitBytes: number
}

export const DEFAULT_SUBSCRIBER_LIMITS: SubscriberLimits = {
  heartbeatMs: 15_000,
  maxPerJob: 64,
  maxPerOwner: 8,
  pageSize: 64,
  lagLimitBytes: 4 * 1024 * 1024,
}

/** Where a subscriber's history comes from. */
export interface EventSource {
  /** Up to `limit` events after `afterId` that `owner` may see, oldest first. */
  page(afterId: number, owner: string, limit: number): LoggedEvent[]
  /** True when the job has ended for `owner` (nothing after what the log holds will come). */
  ended(owner: string): boolean
}

/** The comment a dropped subscriber reads last (comments are ignored by EventSource clients). */
export const LAGGING_COMMENT =
  ': dropped: this client fell too far behind; reconnect with Last-Event-ID to resume\n\n'

interface Subscriber {
  owner: string
  /** Id of the last event written to this stream. */
  cursor: number
  /** Caught up with the log: fed by broadcast from now on. */
  live: boolean
  closed: boolean
  controller: ReadableStreamDefaultController<Uint8Array>
}

export class Subscribers {
  readonly #limits: SubscriberLimits
  readonly #source: EventSource
  readonly #open = new Set<Subscriber>()
  #heartbeat: ReturnType<typeof setInterval> | undefined

  constructor(source: EventSource, limits: Partial<SubscriberLimits> = {}) {
    this.#source = source
    this.#limits = { ...DEFAULT_SUBSCRIBER_LIMITS, ...limits }
  }

  get size(): number {
    return this.#open.size
  }

  /**
   * A new stream for `owner` of the events after `afterId`; null when the job or this owner already has
   * as many streams as allowed.
   */
  open(owner: string, afterId: number): ReadableStream<Uint8Array> | null {
    const mine = [...this.#open].filter((subscriber) => subscriber.owner === owner).length
    if (this.#open.size >= this.#limits.maxPerJob || mine >= this.#limits.maxPerOwner) return null
    let subscriber: Subscriber | undefined
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          subscriber = { owner, cursor: afterId, live: false, closed: false, controller }
          this.#open.add(subscriber)
        },
        pull: () => {
          if (subscriber) this.#readHistory(subscriber)
        },
        cancel: () => {
          if (subscriber) this.#remove(subscriber)
        },
      },
      { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
    )
  }

  /** Writes a new event to every live stream that may see it; a terminal one ends those streams. */
  broadcast(event: LoggedEvent): void {
    for (const subscriber of this.#open) {
      if (!subscriber.live || subscriber.closed) continue
      if (event.audience !== undefined && event.audience !== subscriber.owner) continue
      if (event.id <= subscriber.cursor) continue
      this.#write(subscriber, event)
      if (!subscriber.closed && this.#lagging(subscriber)) this.#drop(subscriber)
    }
  }

  /** Ends every stream (the object is going away; clients resume elsewhere with Last-Event-ID). */
  closeAll(): void {
    for (const subscriber of [...this.#open]) this.#close(subscriber)
  }

  /** Feeds a catching-up stream one page of its history, or switches it to live once it is caught up. */
  #readHistory(subscriber: Subscriber): void {
    if (subscriber.live || subscriber.closed) return
    const { pageSize } = this.#limits
    const events = this.#source.page(subscriber.cursor, subscriber.owner, pageSize)
    for (const event of events) {
      this.#write(subscriber, event)
      if (subscriber.closed) return
    }
    if (events.length < pageSize) {
      // Caught up, in the same synchronous turn as the read: no event can slip in between.
      if (this.#source.ended(subscriber.owner)) {
        this.#close(subscriber)
      } else {
        subscriber.live = true
        this.#startHeartbeat()
      }
    }
  }

  #write(subscriber: Subscriber, event: LoggedEvent): void {
    subscriber.controller.enqueue(encoder.encode(eventText(event)))
    subscriber.cursor = event.id
    if (TERMINAL_EVENTS.has(event.event)) this.#close(subscriber)
  }

  #lagging(subscriber: Subscriber): boolean {
    const desired = subscriber.controller.desiredSize ?? 0
    return -desired > this.#limits.lagLimitBytes
  }

  #drop(subscriber: Subscriber): void {
    subscriber.controller.enqueue(encoder.encode(LAGGING_COMMENT))
    this.#close(subscriber)
  }

  #close(subscriber: Subscriber): void {
    if (!subscriber.closed) {
      subscriber.closed = true
      try {
        subscriber.controller.close()
      } catch {
        // Already errored or canceled by the reader.
      }
    }
    this.#remove(subscriber)
  }

  #remove(subscriber: Subscriber): void {
    subscriber.closed = true
    this.#open.delete(subscriber)
    if (![...this.#open].some((open) => open.live)) this.#stopHeartbeat()
  }

  #startHeartbeat(): void {
    this.#heartbeat ??= setInterval(() => {
      const beat = encoder.encode(SSE_HEARTBEAT)
      for (const subscriber of this.#open) {
        if (!subscriber.live || subscriber.closed) continue
        subscriber.controller.enqueue(beat)
        if (this.#lagging(subscriber)) this.#drop(subscriber)
      }
    }, this.#limits.heartbeatMs)
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
  }
}
