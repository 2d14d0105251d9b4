import { describe, expect, it } from 'vitest'
import { EventQueue, type EventQueueOptions } from '../../../gpu-service/src/http/event-queue.ts'

interface Event {
  type: 'step' | 'preview' | 'result'
  step: number
  /** Stands for the event's size. */
  bytes?: number
}

function queueOf(options: Partial<EventQueueOptions<Event>> = {}) {
  const overflows: string[] = []
  const queue = new EventQueue<Event>({
    maxItems: 100,
    maxBytes: 10_000,
    sizeOf: (event) => event.bytes ?? 10,
    replaceKey: (event) => (event.type === 'preview' ? 'preview' : undefined),
    onOverflow: (reason) => overflows.push(reason),
    ...options,
  })
  return { queue, overflows }
}

async function readAll(queue: EventQueue<Event>): Promise<string[]> {
  const read: string[] = []
  for await (const event of queue) read.push(`${event.type} ${event.step}`)
  return read
}

const step = (n: number): Event => ({ type: 'step', step: n })
const preview = (n: number, bytes = 10): Event => ({ type: 'preview', step: n, bytes })

describe('EventQueue', () => {
  it('hands over items in order, including those pushed before reading, and ends after close', async () => {
    const { queue } = queueOf()
    queue.push(step(0))
    const reading = readAll(queue)
    queue.push(step(1))
    queue.close({ type: 'result', step: 1 })
    expect(await reading).toEqual(['step 0', 'step 1', 'result 1'])
  })

  it('replaces an unread preview with a newer one, placed after the steps pushed since', async () => {
    const { queue } = queueOf()
    queue.push(step(0))
    queue.push(preview(0))
    queue.push(step(1))
    queue.push(preview(1))
    queue.push(step(2))
    queue.push(preview(2))
    expect([queue.length, queue.bytes]).toEqual([4, 40])
    queue.close()
    expect(await readAll(queue)).toEqual(['step 0', 'step 1', 'step 2', 'preview 2'])
  })

  it('keeps a preview the reader has already taken, and every step', async () => {
    const { queue } = queueOf()
    const read: string[] = []
    const reader = queue[Symbol.asyncIterator]()
    queue.push(preview(0))
    read.push(`${((await reader.next()).value as Event).step}`)
    queue.push(step(1))
    queue.push(preview(1))
    queue.close()
    for (let next = await reader.next(); !next.done; next = await reader.next()) {
      read.push(`${next.value.type} ${next.value.step}`)
    }
    expect(read).toEqual(['0', 'step 1', 'preview 1'])
  })

  it('overflows once past maxItems: the push is dropped, so are later ones, the last item is not', async () => {
    const { queue, overflows } = queueOf({ maxItems: 3 })
    expect([step(0), step(1), step(2), step(3), step(4)].map((event) => queue.push(event))).toEqual(
      [true, true, true, false, false],
    )
    expect(queue.overflowed).toBe(true)
    expect(overflows).toEqual(['more than 3 events waiting for the client'])
    queue.close({ type: 'result', step: 4 })
    expect(await readAll(queue)).toEqual(['step 0', 'step 1', 'step 2', 'result 4'])
  })

  it('overflows past maxBytes, counting a replaced preview out', async () => {
    const { queue, overflows } = queueOf({ maxBytes: 100 })
    expect(queue.push(preview(0, 60))).toBe(true)
    expect(queue.push(preview(1, 90))).toBe(true)
    expect(queue.bytes).toBe(90)
    expect(queue.push(step(2))).toBe(true)
    expect(queue.push(step(3))).toBe(false)
    expect(overflows).toEqual(['more than 100 bytes of events waiting for the client'])
  })

  it('frees the room of what the reader took', async () => {
    const { queue, overflows } = queueOf({ maxItems: 2 })
    const reader = queue[Symbol.asyncIterator]()
    for (let n = 0; n < 10; n++) {
      expect(queue.push(step(n))).toBe(true)
      await reader.next()
    }
    expect([queue.length, queue.bytes, overflows]).toEqual([0, 0, []])
  })

  it('drops pushes after close', async () => {
    const { queue } = queueOf()
    queue.close()
    expect(queue.push(step(0))).toBe(false)
    expect(await readAll(queue)).toEqual([])
  })

  it('refuses limits that are not positive integers', () => {
    expect(() => queueOf({ maxItems: 0 })).toThrow(
      new RangeError('maxItems must be a positive integer, got 0'),
    )
  })
})
