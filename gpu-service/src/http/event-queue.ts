// The hand-over between the scheduler, which pushes a run's events as they happen, and the SSE writer,
// which pulls them at the client's pace. Events pushed before the stream opens wait here. Bounded: a
// newer item replaces a queued older one with the same replace key (a run's x0 previews are snapshots,
// only the latest matters), and a push past the item or byte limit overflows the queue, which then
// takes nothing more but its last item, so a slow client cannot make the service buffer without end.

export interface EventQueueLimits {
  /** Items waiting to be read; a push beyond this overflows the queue. */
  maxItems: number
  /** Their total size as `sizeOf` counts it; a push beyond this overflows the queue. */
  maxBytes: number
}

export interface EventQueueOptions<T> extends EventQueueLimits {
  /** An item's size in bytes, or an estimate of it. */
  sizeOf(item: T): number
  /** Items with the same key replace each other while queued; undefined: the item is never replaced. */
  replaceKey?(item: T): string | undefined
  /** Called once, on the push that would pass a limit (that item is dropped), with why. */
  onOverflow?(reason: string): void
}

/**
 * A bounded first-in first-out queue read with `for await`; the loop ends once the queue is closed and
 * empty. A replacing push removes the queued item of the same key and appends the new one at the end,
 * so an item still follows what was pushed before it.
 *
 * @example
 * const queue = new EventQueue<RunEvent>({ maxItems: 2000, maxBytes: 1 << 20, sizeOf,
 *   replaceKey: (event) => (event.type === 'preview' ? 'preview' : undefined) })
 * queue.push(event)
 * queue.close(lastEvent)
 * for await (const event of queue) await write(event)
 */
export class EventQueue<T> implements AsyncIterable<T> {
  readonly #options: EventQueueOptions<T>
  readonly #items: { item: T; bytes: number; key: string | undefined }[] = []
  #bytes = 0
  #closed = false
  #overflowed = false
  #wake: (() => void) | undefined

  constructor(options: EventQueueOptions<T>) {
    for (const key of ['maxItems', 'maxBytes'] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 1) {
        throw new RangeError(`${key} must be a positive integer, got ${options[key]}`)
      }
    }
    this.#options = options
  }

  /** Items waiting to be read. */
  get length(): number {
    return this.#items.length
  }

  /** Their total size, as `sizeOf` counts it. */
  get bytes(): number {
    return this.#bytes
  }

  /** Whether a push has passed a limit; the queue takes no more pushes then, only its last item. */
  get overflowed(): boolean {
    return this.#overflowed
  }

  /** Queues `item`; false when it was dropped (the queue is closed, or overflowed now or before). */
  push(item: T): boolean {
    if (this.#closed || this.#overflowed) return false
    const entry = { item, bytes: this.#options.sizeOf(item), key: this.#options.replaceKey?.(item) }
    const replaced =
      entry.key === undefined ? -1 : this.#items.findIndex((queued) => queued.key === entry.key)
    const replacedBytes = replaced >= 0 ? (this.#items[replaced]?.bytes ?? 0) : 0
    const items = this.#items.length + (replaced >= 0 ? 0 : 1)
    const bytes = this.#bytes - replacedBytes + entry.bytes
    if (items > this.#options.maxItems || bytes > this.#options.maxBytes) {
      this.#overflowed = true
      const reason =
        items > this.#options.maxItems
          ? `more than ${this.#options.maxItems} events waiting for the client`
          : `more than ${this.#options.maxBytes} bytes of events waiting for the client`
      this.#options.onOverflow?.(reason)
      return false
    }
    if (replaced >= 0) this.#items.splice(replaced, 1)
    this.#items.push(entry)
    this.#bytes = bytes
    this.#notify()
    return true
  }

  /** Ends the queue after `last` (if given), which is taken even past the limits; idempotent. */
  close(last?: T): void {
    if (this.#closed) return
    if (last !== undefined) {
      const bytes = this.#options.sizeOf(last)
      this.#items.push({ item: last, bytes, key: undefined })
      this.#bytes += bytes
    }
    this.#closed = true
    this.#notify()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const next = this.#items.shift()
      if (next) {
        this.#bytes -= next.bytes
        yield next.item
      } else if (this.#closed) {
        return
      } else {
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
      }
    }
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }
}
