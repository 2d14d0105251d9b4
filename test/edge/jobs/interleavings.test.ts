// The job's state only moves forward, whatever order a result, a cancel, a deadline, the watchdog and a
// stale backend stream arrive in. Each interleaving is forced deterministically: a gate holds the result
// store, a backend's DELETE hangs, or a backend keeps streaming after it was told to stop.
import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import type { GenerationJob } from '../../../edge/src/jobs/generation-job.ts'
import { canMove, isCurrent, startsNewRun } from '../../../edge/src/jobs/job-machine.ts'
import { GENERATION_STATUSES } from '../../../shared/generation-api.ts'
import { call, createKey, postGeneration, readEvents, uniqueSeed, until } from '../helpers/api.ts'
import { useFakeBackends } from '../helpers/fake-backends.ts'
import { STORED_OWNER, seedStoredRow, storedJob } from '../helpers/stored-job.ts'

const backends = useFakeBackends()
const A = 'http://backend-a.test'
const B = 'http://backend-b.test'

type Job = { id: string; status: string; progress: { step: number } }

/** A gate in front of the job's result store: `entered` once storing began, `open()` lets it finish. */
async function holdResultStore(stub: DurableObjectStub<GenerationJob>) {
  let open: () => void = () => {}
  const released = new Promise<void>((resolve) => {
    open = resolve
  })
  const gate = { entered: false, open }
  await runInDurableObject(stub, (instance) => {
    const job = instance as unknown as { storeResult: (...args: unknown[]) => Promise<void> }
    const store = job.storeResult.bind(instance)
    job.storeResult = async (...args: unknown[]) => {
      gate.entered = true
      await released
      return store(...args)
    }
  })
  return gate
}

/** A gate in front of the job's write of a result record (results/<key>/result.json) in R2. */
async function holdResultRecord(stub: DurableObjectStub<GenerationJob>) {
  let open: () => void = () => {}
  const released = new Promise<void>((resolve) => {
    open = resolve
  })
  const gate = { entered: false, open }
  await runInDurableObject(stub, (instance) => {
    const job = instance as unknown as { env: { RESULTS: R2Bucket } }
    const bucket = job.env.RESULTS
    job.env = {
      ...job.env,
      RESULTS: new Proxy(bucket, {
        get(target, name) {
          if (name !== 'put') return Reflect.get(target, name).bind(target)
          return async (key: string, ...rest: Parameters<R2Bucket['put']>[1][]) => {
            if (key.endsWith('/result.json')) {
              gate.entered = true
              await released
            }
            return target.put(key, ...(rest as [Parameters<R2Bucket['put']>[1]]))
          }
        },
      }),
    }
  })
  return gate
}

const getJob = async (authorization: string, id: string) =>
  (await (await call(`/v1/generations/${id}`, { headers: { authorization } })).json()) as Job

describe('the job state machine', () => {
  it('moves a run only forward: queued -> running -> one terminal status, which is final', () => {
    expect(canMove('queued', 'running')).toBe(true)
    expect(canMove('running', 'succeeded')).toBe(true)
    expect(canMove('running', 'canceled')).toBe(true)
    expect(canMove('running', 'queued')).toBe(false)
    for (const terminal of ['succeeded', 'failed', 'canceled'] as const) {
      for (const next of GENERATION_STATUSES) expect(canMove(terminal, next)).toBe(false)
    }
  })

  it('starts a new run only after a run without a result, or one whose result has expired', () => {
    expect(startsNewRun('failed', false)).toBe(true)
    expect(startsNewRun('canceled', false)).toBe(true)
    expect(startsNewRun('succeeded', false)).toBe(true)
    expect(startsNewRun('succeeded', true)).toBe(false)
    expect(startsNewRun('running', false)).toBe(false)
    expect(startsNewRun('queued', true)).toBe(false)
  })

  it('counts events only from the current, unaborted execution of the current run', () => {
    const live = new AbortController()
    const aborted = new AbortController()
    aborted.abort()
    const state = { run: 2, status: 'running' as const }
    expect(isCurrent(state, { run: 2, signal: live.signal })).toBe(true)
    expect(isCurrent(state, { run: 1, signal: live.signal })).toBe(false)
    expect(isCurrent(state, { run: 2, signal: aborted.signal })).toBe(false)
    expect(isCurrent({ run: 2, status: 'canceled' }, { run: 2, signal: live.signal })).toBe(false)
    expect(isCurrent(null, { run: 2, signal: live.signal })).toBe(false)
  })
})

describe('interleavings', () => {
  it('a cancel that arrives while the result is stored waits, and the stored result stands', async () => {
    backends().set(A, { kind: 'ok', stepDelayMs: 30 })
    backends().set(B, { kind: 'ok', stepDelayMs: 30 })
    const { authorization } = await createKey()
    const body = { class: 1, steps: 5, seed: uniqueSeed() }
    const job = (await (await postGeneration(authorization, body)).json()) as Job
    const gate = await holdResultStore(env.GENERATION_JOB.getByName(job.id))
    await until(() => gate.entered)
    const canceling = call(`/v1/generations/${job.id}/cancel`, {
      method: 'POST',
      headers: { authorization },
    })
    await new Promise((resolve) => setTimeout(resolve, 50))
    gate.open()
    const canceled = (await (await canceling).json()) as Job
    expect(canceled.status).toBe('succeeded')
    expect((await getJob(authorization, job.id)).status).toBe('succeeded')
    // POST and GET agree: the identical request is a cache hit of the same succeeded job.
    const again = await postGeneration(authorization, body)
    expect(again.status).toBe(200)
    expect(((await again.json()) as Job).status).toBe('succeeded')
    expect(backends().requests.filter((request) => request.method === 'DELETE')).toEqual([])
  })

  it('says succeeded once the images are stored; a request before the record lands joins that result', async () => {
    backends().set(A, { kind: 'ok', stepDelayMs: 20 })
    backends().set(B, { kind: 'ok', stepDelayMs: 20 })
    const { authorization } = await createKey()
    const body = { class: 3, steps: 4, seed: uniqueSeed() }
    const job = (await (await postGeneration(authorization, body)).json()) as Job
    const gate = await holdResultRecord(env.GENERATION_JOB.getByName(job.id))
    await until(() => gate.entered)
    // The record is held, the job has already said succeeded, and its image is there to fetch.
    expect((await getJob(authorization, job.id)).status).toBe('succeeded')
    expect(await env.RESULTS.head(`results/${job.id}/0.png`)).not.toBeNull()
    expect(await env.RESULTS.head(`results/${job.id}/result.json`)).toBeNull()
    // The route finds no record, so the job answers: it waits for its record, then joins the result.
    const again = postGeneration(authorization, body)
    await new Promise((resolve) => setTimeout(resolve, 50))
    gate.open()
    const joined = await again
    expect(joined.status).toBe(200)
    expect(((await joined.json()) as Job).status).toBe('succeeded')
    expect(await env.RESULTS.head(`results/${job.id}/result.json`)).not.toBeNull()
    expect(backends().runRequests()).toHaveLength(1)
  })

  it('takes a cancel while it reads a backend stream that arrived all at once, not after the last event', async () => {
    // Every step is in the buffer before the job reads the first: each read resolves as a microtask,
    // the case where the job once took no other call until the stream ended (the backend-client
    // yields to the event loop every few events). The run then stalls, so only a cancel ends it.
    const steps = 1000
    backends().set(A, { kind: 'stall-after', steps: steps - 1 })
    backends().set(B, { kind: 'stall-after', steps: steps - 1 })
    const { authorization } = await createKey()
    const job = (await (
      await postGeneration(authorization, { class: 4, steps, guidance: 1, seed: uniqueSeed() })
    ).json()) as Job
    const canceled = (await (
      await call(`/v1/generations/${job.id}/cancel`, { method: 'POST', headers: { authorization } })
    ).json()) as Job
    expect(canceled.status).toBe('canceled')
    expect(canceled.progress.step).toBeLessThan(steps - 1)
  })

  it('a cancel that waits on a hung backend has already ended the job: the watchdog starts nothing', async () => {
    backends().set(A, { kind: 'ok', stepDelayMs: 30 })
    backends().set(B, { kind: 'ok', stepDelayMs: 30 })
    backends().deleteHangs = true
    const { authorization } = await createKey()
    const job = (await (
      await postGeneration(authorization, { class: 2, steps: 100, seed: uniqueSeed() })
    ).json()) as Job
    const stub = env.GENERATION_JOB.getByName(job.id)
    await until(async () => (await getJob(authorization, job.id)).progress.step > 1)
    const started = Date.now()
    const canceling = call(`/v1/generations/${job.id}/cancel`, {
      method: 'POST',
      headers: { authorization },
    })
    await until(() => backends().requests.some((request) => request.method === 'DELETE'))
    // The DELETE hangs, but the job is already canceled, and the watchdog does not bring it back.
    expect((await getJob(authorization, job.id)).status).toBe('canceled')
    await runInDurableObject(stub, async (_instance, state) => state.storage.setAlarm(Date.now()))
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect((await getJob(authorization, job.id)).status).toBe('canceled')
    expect(backends().runRequests()).toHaveLength(1)
    // The cancel answers once the bounded wait for the backend's confirmation is over.
    const response = await canceling
    expect(((await response.json()) as Job).status).toBe('canceled')
    expect(Date.now() - started).toBeLessThan(7_000)
  })

  it('ignores a stale stream that keeps sending after its run was canceled and a new run began', async () => {
    backends().set(A, { kind: 'ok', stepDelayMs: 15, ignoresAbort: true })
    backends().set(B, { kind: 'ok', stepDelayMs: 15, ignoresAbort: true })
    const { authorization, id: owner } = await createKey()
    const body = { class: 3, steps: 40, seed: uniqueSeed() }
    const job = (await (await postGeneration(authorization, body)).json()) as Job
    await until(async () => (await getJob(authorization, job.id)).progress.step > 3)
    await call(`/v1/generations/${job.id}/cancel`, { method: 'POST', headers: { authorization } })
    // The first run's stream goes on; its steps must not bring the job back to life.
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect((await getJob(authorization, job.id)).status).toBe('canceled')
    // A new request starts run 2, while run 1's stream still sends.
    const again = (await (await postGeneration(authorization, body)).json()) as Job
    expect(again.status).toBe('queued')
    const events = await readEvents(
      await call(`/v1/generations/${job.id}/events`, { headers: { authorization } }),
    )
    const steps = events
      .filter((event) => event.event === 'step')
      .map((event) => (event.data as { step: number }).step)
    expect(steps).toEqual(Array.from({ length: 40 }, (_, step) => step))
    expect(events.at(-1)?.event).toBe('succeeded')
    const done = await env.GENERATION_JOB.getByName(job.id).snapshot(owner)
    expect(done).toMatchObject({ status: 'succeeded', run: 2 })
  })

  it('a deadline that passes while the result is stored lets the stored result stand', async () => {
    const deadline = Date.now() + 1_500
    const stub = await seedStoredRow(
      storedJob({ step: 0, deadline, request: { ...storedJob().request, steps: 3, guidance: 1 } }),
    )
    // Waking it resumes the run; the gate holds its result store past the deadline.
    const gate = await holdResultStore(stub)
    await until(() => gate.entered)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline + 200 - Date.now())))
    expect((await stub.snapshot(STORED_OWNER))?.status).toBe('running')
    gate.open()
    const done = await stub.waitForCompletion(STORED_OWNER, 5_000)
    expect(done?.status).toBe('succeeded')
    expect(done?.error).toBeUndefined()
  })
})
