// The hand-over between the scheduler, which pushes a run's events as they happen, and the SSE writer,
// which pulls them at the client's pace. Events pushed before the stream opens wait here.

/**
 * An unbounded first-in first-out queue read with `for await`; the loop ends once the queue is closed
 * and empty. Pushes after close are dropped.
 *
 * @example
 * const queue = new EventQueue<RunEvent>()
 * queue.push(event)
 * queue.close()
 * for await (const event of queue) await write(event)
 */
export class EventQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = []
  #closed = false
  #wake: (() => void) | undefined

  push(item: T): void {
    if (this.#closed) return
    this.#items.push(item)
    this.#notify()
  }

  close(): void {
    this.#closed = true
    this.#notify()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.#items.length > 0) {
        yield this.#items.shift() as T
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
