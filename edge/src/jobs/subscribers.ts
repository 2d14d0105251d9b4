// The live SSE subscribers of one job: each gets its own stream, every new event is written to all of
// them, and a heartbeat comment keeps idle connections open through proxies.
import { SSE_HEARTBEAT } from '../../../shared/sse.ts'

const encoder = new TextEncoder()

export class Subscribers {
  readonly #writers = new Set<WritableStreamDefaultWriter<Uint8Array>>()
  readonly #heartbeatMs: number
  #heartbeat: ReturnType<typeof setInterval> | undefined

  constructor(heartbeatMs: number) {
    this.#heartbeatMs = heartbeatMs
  }

  get size(): number {
    return this.#writers.size
  }

  /**
   * A new stream that starts with `history` (already formatted SSE text); it stays open for `broadcast`
   * unless `close` is set, as for a job that has already ended.
   */
  open(history: string[], close: boolean): ReadableStream<Uint8Array> {
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>()
    const writer = writable.getWriter()
    for (const text of history) this.#write(writer, text)
    if (close) {
      writer.close().catch(() => {})
    } else {
      this.#writers.add(writer)
      this.#startHeartbeat()
    }
    return readable
  }

  broadcast(text: string): void {
    for (const writer of this.#writers) this.#write(writer, text)
  }

  /** Ends every stream (after the job's last event). */
  closeAll(): void {
    for (const writer of this.#writers) writer.close().catch(() => {})
    this.#writers.clear()
    this.#stopHeartbeat()
  }

  #write(writer: WritableStreamDefaultWriter<Uint8Array>, text: string): void {
    // Not awaited: a slow reader must not hold up the job; a gone one is dropped.
    writer.write(encoder.encode(text)).catch(() => this.#drop(writer))
  }

  #drop(writer: WritableStreamDefaultWriter<Uint8Array>): void {
    this.#writers.delete(writer)
    if (this.#writers.size === 0) this.#stopHeartbeat()
  }

  #startHeartbeat(): void {
    this.#heartbeat ??= setInterval(() => this.broadcast(SSE_HEARTBEAT), this.#heartbeatMs)
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
  }
}
