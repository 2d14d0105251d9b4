// Faults on loopback, each against a real stack (edge/scripts/local-stack.ts) with the committed models:
// a gpu-service SIGKILLed mid-run with a second one configured (the job ends there with the same bytes as
// an undisturbed run) and with none (a clear, bounded failure); wrangler dev restarted mid-job on the same
// state (status survives, the event stream resumes from Last-Event-ID with the resumed attempt, no
// duplicate); a client that drops its stream and comes back; a cancel that frees the gpu-service within
// one step. Assertions stay on ids, terminal statuses and bytes, not on the exact event sequence (a
// failover adds events).
// Runs are small (4 guided images, heavy encoder every step, 40-60 steps: a few seconds on two cores),
// long enough to be interrupted on purpose. Timings are printed, not asserted.
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runDirect } from '../../edge/scripts/direct-run.ts'
import { type LocalStack, startLocalStack } from '../../edge/scripts/local-stack.ts'
import type { Generation } from '../../shared/generation-api.ts'
import { problemSchema } from '../../shared/problem.ts'
import type { RunRequest } from '../../shared/run-protocol.ts'

const TERMINAL = new Set(['succeeded', 'failed', 'canceled'])

interface JobEvent {
  id: number
  event: string
  data: Record<string, unknown>
}

/** A job's SSE stream read in the background: its events so far and how it ended. */
interface EventStream {
  events: JobEvent[]
  /** Settles when the stream ends or breaks (with the error), or is closed. */
  ended: Promise<Error | null>
  close(): void
}

function openEvents(stack: LocalStack, id: string, lastEventId?: number): EventStream {
  const controller = new AbortController()
  const events: JobEvent[] = []
  const ended = (async () => {
    const response = await fetch(`${stack.edgeUrl}/v1/generations/${id}/events`, {
      headers: {
        authorization: `Bearer ${stack.apiKey}`,
        ...(lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) }),
      },
      signal: controller.signal,
    })
    if (response.status !== 200 || !response.body) {
      throw new Error(`GET events answered ${response.status}: ${await response.text()}`)
    }
    const messages = response.body
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream())
    for await (const message of messages) {
      events.push({
        id: Number(message.id),
        event: message.event ?? 'message',
        data: JSON.parse(message.data),
      })
    }
    return null
  })().catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))))
  return { events, ended, close: () => controller.abort() }
}

async function until<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const stepReached = (stream: EventStream, step: number) => () =>
  stream.events.find((event) => event.event === 'step' && Number(event.data.step) >= step)

const terminalEvent = (stream: EventStream) => () =>
  stream.events.find((event) => TERMINAL.has(event.event))

/** A public request and the same request as the gpu-service receives it (for a reference run). */
function request(seed: number, steps = 40): { body: object; run: RunRequest } {
  const options = { count: 4, steps, heavySchedule: { every: 1 }, guidance: 2, seed }
  return {
    body: { class: 3, ...options, previewEvery: 10 },
    run: { classIndex: 3, ...options, previewEvery: 0 },
  }
}

async function submit(stack: LocalStack, body: object): Promise<Generation> {
  const response = await fetch(`${stack.edgeUrl}/v1/generations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(response.status).toBe(202)
  return (await response.json()) as Generation
}

async function generation(stack: LocalStack, id: string): Promise<Generation> {
  const response = await fetch(`${stack.edgeUrl}/v1/generations/${id}`, {
    headers: { authorization: `Bearer ${stack.apiKey}` },
  })
  expect(response.status).toBe(200)
  return (await response.json()) as Generation
}

/**
 * A gpu-service's Prometheus samples: each series by its full name (`dualrate_runs_total{outcome="cancelled"}`)
 * and each metric's sum over its label sets by its bare name.
 */
async function metrics(backendUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${backendUrl}/metrics`)).text()
  const samples: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const sample = /^(dualrate_[a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (!sample?.[1]) continue
    const value = Number(sample[3])
    samples[sample[1]] = (samples[sample[1]] ?? 0) + value
    if (sample[2]) samples[`${sample[1]}${sample[2]}`] = value
  }
  return samples
}

/** The index of the one backend with a run stepping now. */
async function activeBackend(stack: LocalStack): Promise<number> {
  const active = await Promise.all(
    stack.backendUrls.map(async (url) => (await metrics(url)).dualrate_active_runs ?? 0),
  )
  const index = active.findIndex((runs) => runs > 0)
  if (index < 0 || active.filter((runs) => runs > 0).length > 1) {
    throw new Error(`expected one backend with an active run, found ${JSON.stringify(active)}`)
  }
  return index
}

/** Ids of a stream joined from pieces: each is the previous one plus one. */
function expectContiguous(events: JobEvent[]): void {
  const ids = events.map((event) => event.id)
  expect(ids).toEqual(ids.map((_, index) => (ids[0] ?? 0) + index))
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

describe('two gpu-services behind the edge', () => {
  let stack: LocalStack
  beforeAll(async () => {
    stack = await startLocalStack({ backends: 2 })
  }, 240_000)
  afterAll(async () => {
    await stack?.stop()
  }, 60_000)

  it('finishes a job on the other backend when one is SIGKILLed mid-run, byte for byte', async () => {
    const { body, run } = request(910_001)
    // The undisturbed reference, straight from a gpu-service (the edge stores the backend's PNGs as sent).
    const reference = await runDirect({
      backendUrl: stack.backendUrl,
      secret: stack.backendSecret,
      request: run,
    })
    const job = await submit(stack, body)
    const stream = openEvents(stack, job.id)
    await until('step 3 of the first attempt', stepReached(stream, 3), 60_000)
    const victim = await activeBackend(stack)
    const killedAt = Date.now()
    expect(stack.backends[victim]?.kill('SIGKILL')).toBe(true)

    const end = await until('the end of the job', terminalEvent(stream), 90_000)
    const recoveredMs = Date.now() - killedAt
    expect(end.event).toBe('succeeded')
    expectContiguous(stream.events)
    const finished = await generation(stack, job.id)
    expect(finished.status).toBe('succeeded')
    expect(finished.progress.attempts).toBeGreaterThanOrEqual(2)
    const images = finished.urls.images ?? []
    expect(images).toHaveLength(4)
    for (const [index, url] of images.entries()) {
      const png = new Uint8Array(await (await fetch(url)).arrayBuffer())
      expect(Buffer.from(png).equals(Buffer.from(reference.images[index] ?? []))).toBe(true)
    }
    console.log(
      `faults: gpu-service-${victim + 1} SIGKILLed at step 3; the job succeeded on the other ` +
        `backend ${seconds(recoveredMs)} later (${finished.progress.attempts} attempts), 4 PNGs equal to the reference`,
    )
    await stack.backends[victim]?.restart()
  }, 180_000)

  it('keeps a job through a restart of wrangler dev: status, a resumed stream, the result', async () => {
    // No previews: the log keeps only the latest one, so with none the resumed stream has no gap.
    const { body } = request(910_002, 60)
    const job = await submit(stack, { ...body, previewEvery: 0 })
    const first = openEvents(stack, job.id)
    await until('step 3', stepReached(first, 3), 60_000)
    const restartAt = Date.now()
    await stack.edge.restart()
    const edgeBackAt = Date.now()
    await first.ended // the old connection ended with the old edge
    // Untouched by any client, the job is resumed by its own watchdog alarm: watch the gpu-services.
    const resumedAt = await until(
      'the run on a gpu-service again, with no client asking',
      async () => {
        const active = await Promise.all(stack.backendUrls.map((url) => metrics(url)))
        return active.some((sample) => (sample.dualrate_active_runs ?? 0) > 0)
          ? Date.now()
          : undefined
      },
      45_000,
    )

    const status = await generation(stack, job.id)
    expect(status.id).toBe(job.id)
    expect(['queued', 'running', 'succeeded']).toContain(status.status)
    const lastSeen = first.events.at(-1)?.id as number
    const second = openEvents(stack, job.id, lastSeen)
    const end = await until('the end of the job', terminalEvent(second), 150_000)
    const endedAt = Date.now()
    expect(end.event).toBe('succeeded')
    // The restart lost the run and the progress it had made (progress lives in the job object's
    // memory): the stream goes on with the resumed attempt, its ids above every id given before.
    expect(second.events[0]).toMatchObject({ event: 'retrying', data: { reason: 'job-resumed' } })
    expect(second.events[0]?.id).toBeGreaterThan(lastSeen)
    const combined = [...first.events, ...second.events]
    const ids = combined.map((event) => event.id)
    expect(ids).toEqual([...new Set(ids)].sort((a, b) => a - b))
    expectContiguous(second.events)
    const resumed = second.events.find((event) => event.event === 'started')
    console.log(
      `faults: wrangler dev restarted in ${seconds(edgeBackAt - restartAt)}; its alarm resumed the ` +
        `job ${seconds(resumedAt - edgeBackAt)} after the edge was back, with no client asking; it ` +
        `${resumed ? 'started again' : 'went on'} and succeeded ${seconds(endedAt - edgeBackAt)} ` +
        `after the edge was back (${combined.length} events, ids ${combined[0]?.id}..${combined.at(-1)?.id}, ` +
        `${second.events.length} after Last-Event-ID ${lastSeen})`,
    )
  }, 240_000)

  it('replays everything a client missed while disconnected, from Last-Event-ID', async () => {
    const { body } = request(910_003)
    const job = await submit(stack, body)
    const first = openEvents(stack, job.id)
    await until('step 5', stepReached(first, 5), 60_000)
    first.close()
    await first.ended
    const lastSeen = first.events.at(-1)?.id as number
    // Away for a while: the job goes on without this client.
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    const second = openEvents(stack, job.id, lastSeen)
    await until('the end of the job', terminalEvent(second), 90_000)
    expect(await second.ended).toBeNull()

    // The whole history, read afterwards. The log keeps every event but superseded previews (only the
    // latest preview is kept), so the rejoined stream holds all of it, plus the previews seen live.
    const whole = openEvents(stack, job.id)
    expect(await whole.ended).toBeNull()
    expect(whole.events.at(-1)?.event).toBe('succeeded')
    const rejoined = [...first.events, ...second.events]
    const ids = rejoined.map((event) => event.id)
    expect(ids).toEqual([...new Set(ids)].sort((a, b) => a - b))
    const withoutPreviews = (events: JobEvent[]) =>
      events.filter((event) => event.event !== 'preview')
    expect(withoutPreviews(rejoined)).toEqual(withoutPreviews(whole.events))
    for (const event of whole.events) expect(rejoined).toContainEqual(event)
    const steps = rejoined.filter((event) => event.event === 'step').map((event) => event.data.step)
    expect(steps).toEqual(steps.map((_, index) => (steps[0] as number) + index))
    expect(steps).toHaveLength(40)
  }, 180_000)

  it('frees the gpu-service within one step of a cancel', async () => {
    const { body } = request(910_004, 60)
    const job = await submit(stack, body)
    const stream = openEvents(stack, job.id)
    await until('step 3', stepReached(stream, 3), 60_000)
    const backendUrl = stack.backendUrls[await activeBackend(stack)] as string
    const before = await metrics(backendUrl)
    const clientStep = stream.events.filter((event) => event.event === 'step').at(-1)?.data.step
    const cancelled = await fetch(`${stack.edgeUrl}/v1/generations/${job.id}/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.apiKey}` },
    })
    const atAnswer = await metrics(backendUrl)
    expect(cancelled.status).toBe(200)
    expect(((await cancelled.json()) as Generation).status).toBe('canceled')
    // Several step times (about 0.1-0.3 s each here) for a run that was not stopped to show itself.
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const after = await metrics(backendUrl)
    const stepsAfterAnswer =
      (after.dualrate_steps_total ?? 0) - (atAnswer.dualrate_steps_total ?? 0)
    console.log(
      `faults: cancel sent at step ${clientStep} (as the client saw it); ${stepsAfterAnswer} step(s) ` +
        `ran on the gpu-service after the cancel answered; active runs then ${after.dualrate_active_runs}`,
    )
    expect(stepsAfterAnswer).toBeLessThanOrEqual(1)
    expect(after.dualrate_active_runs).toBe(0)
    // The edge closes the run's stream and sends DELETE: whichever the gpu-service sees first ends it.
    const stopped = (sample: Record<string, number>) =>
      (sample['dualrate_runs_total{outcome="cancelled"}'] ?? 0) +
      (sample['dualrate_runs_total{outcome="disconnected"}'] ?? 0)
    expect(stopped(after)).toBe(stopped(before) + 1)
    const end = await until('the end of the stream', terminalEvent(stream), 10_000)
    expect(end.event).toBe('canceled')
  }, 120_000)
})

describe('one gpu-service behind the edge', () => {
  let stack: LocalStack
  beforeAll(async () => {
    stack = await startLocalStack({ backends: 1 })
  }, 240_000)
  afterAll(async () => {
    await stack?.stop()
  }, 60_000)

  it('fails the job with a clear problem, and no backend detail, when its only backend dies', async () => {
    const { body } = request(910_005)
    const job = await submit(stack, body)
    const stream = openEvents(stack, job.id)
    await until('step 3', stepReached(stream, 3), 60_000)
    const killedAt = Date.now()
    expect(stack.backends[0]?.kill('SIGKILL')).toBe(true)

    const end = await until('the end of the job', terminalEvent(stream), 60_000)
    const failedAfterMs = Date.now() - killedAt
    expect(end.event).toBe('failed')
    const problem = problemSchema.parse(end.data.problem)
    expect(problem.status).toBeGreaterThanOrEqual(502)
    expect(problem.status).toBeLessThanOrEqual(504)
    const finished = await generation(stack, job.id)
    expect(finished.status).toBe('failed')
    expect(finished.error).toEqual(problem)
    // The job's own URLs name the edge (127.0.0.1 too); nothing may name the backend or its error.
    const port = new URL(stack.backendUrl).port
    expect(JSON.stringify(problem)).not.toContain('127.0.0.1')
    for (const text of [JSON.stringify(problem), JSON.stringify(finished)]) {
      expect(text).not.toContain(`:${port}`)
      expect(text).not.toMatch(/ECONNREFUSED|ECONNRESET|fetch failed|socket|stack/i)
    }
    console.log(
      `faults: the only gpu-service SIGKILLed at step 3; the job failed ${seconds(failedAfterMs)} ` +
        `later with ${problem.status} "${problem.title}": ${problem.detail ?? ''}`,
    )
  }, 120_000)
})
