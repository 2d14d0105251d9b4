// The event log keeps the record in storage and progress in memory, and never gives an id twice: not after
// a restart, when the progress it held is gone.
import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { EventLog, ID_BLOCK, MAX_PROGRESS_EVENTS } from '../../../edge/src/jobs/event-log.ts'

const step = (n: number) => ({ step: n, totalSteps: 3, t: 1, heavy: true, elapsedMs: 0 })

/** Runs `use` on the SQLite storage of a new, otherwise unused job object. */
const withStorage = <T>(use: (sql: SqlStorage) => T) =>
  runInDurableObject(env.GENERATION_JOB.getByName(crypto.randomUUID()), (_instance, state) =>
    use(state.storage.sql),
  )

describe('EventLog', () => {
  it('stores queued, started and the ending; holds steps and previews in memory, in one id order', async () => {
    await withStorage((sql) => {
      const log = new EventLog(sql)
      log.createSchema()
      log.append('queued', { id: 'k' })
      log.append('started', { attempt: 1, modelId: 'm' })
      log.append('step', step(0))
      log.append('preview', { step: 0, images: [] })
      log.append('step', step(1))
      log.append('preview', { step: 1, images: [] })
      log.append('succeeded', { images: [], timings: {} as never })
      expect(log.size()).toMatchObject({ events: 3, heldEvents: 3 })
      const page = log.page(0, 'owner', 10)
      expect(page.map((event) => `${event.id} ${event.event}`)).toEqual([
        '1 queued',
        '2 started',
        '3 step',
        '5 step',
        '6 preview',
        '7 succeeded',
      ])
      // Pages merge both sources under the same limit and bounds.
      expect(log.page(2, 'owner', 2).map((event) => event.id)).toEqual([3, 5])
      expect(log.page(0, 'owner', 10, 5).map((event) => event.id)).toEqual([1, 2, 3, 5])
    })
  })

  it('gives a restarted object ids after every id an earlier instance gave, held ones included', async () => {
    await withStorage((sql) => {
      const before = new EventLog(sql)
      before.createSchema()
      before.append('queued', { id: 'k' })
      let last = 0
      for (let n = 0; n < 5; n++) last = before.append('step', step(n)).id
      // A new instance on the same storage is what a restart makes: the held steps are gone.
      const after = new EventLog(sql)
      expect(after.page(0, 'owner', 10).map((event) => event.event)).toEqual(['queued'])
      const retrying = after.append('retrying', { attempt: 2, reason: 'job-resumed' })
      expect(retrying.id).toBeGreaterThan(last)
      expect(after.nextId()).toBe(retrying.id + 1)
    })
  })

  it('reserves ids in blocks: one storage write per ID_BLOCK ids', async () => {
    await withStorage((sql) => {
      const log = new EventLog(sql)
      log.createSchema()
      const reserved = () => sql.exec<{ reserved: number }>('SELECT reserved FROM event_ids').one()
      log.append('queued', { id: 'k' })
      expect(reserved().reserved).toBe(ID_BLOCK)
      for (let n = 1; n < ID_BLOCK; n++) log.append('step', step(n))
      expect(reserved().reserved).toBe(ID_BLOCK)
      log.append('step', step(0))
      expect(reserved().reserved).toBe(2 * ID_BLOCK)
    })
  })

  it('holds at most MAX_PROGRESS_EVENTS progress events, dropping the oldest, and pruning drops them all', async () => {
    await withStorage((sql) => {
      const log = new EventLog(sql)
      log.createSchema()
      log.append('queued', { id: 'k' })
      for (let n = 0; n < MAX_PROGRESS_EVENTS + 5; n++) log.append('step', step(n))
      expect(log.size().heldEvents).toBe(MAX_PROGRESS_EVENTS)
      const first = log.page(1, 'owner', 1)[0]
      expect(first?.data).toMatchObject({ step: 5 })
      log.append('succeeded', { images: [], timings: {} as never })
      log.prune()
      expect(log.size()).toMatchObject({ events: 1, heldEvents: 0 })
    })
  })

  it('continues a log written before ids were reserved after its highest id, deleted ones included', async () => {
    await withStorage((sql) => {
      // The table as the first version made it; the last row is deleted, as a pruned preview was.
      sql.exec(`CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL,
        data TEXT NOT NULL, at INTEGER NOT NULL, audience TEXT)`)
      for (let n = 0; n < 4; n++)
        sql.exec("INSERT INTO events (event, data, at) VALUES ('step', '{}', 0)")
      sql.exec('DELETE FROM events WHERE id = 4')
      const log = new EventLog(sql)
      log.createSchema()
      expect(log.append('succeeded', { images: [], timings: {} as never }).id).toBe(5)
    })
  })
})
