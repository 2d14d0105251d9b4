// The run routes through the real service on loopback with the committed models.
import { setTimeout as sleep } from 'node:timers/promises'
import { decode } from 'fast-png'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signedFetch } from '../../../gpu-service/src/cli/run-client.ts'
import { PROBLEM_CONTENT_TYPE, problemSchema } from '../../../shared/problem.ts'
import { SIGNATURE_HEADER, signRequest } from '../../../shared/request-signature.ts'
import {
  MODEL_NOT_LOADED_PROBLEM,
  type RunEvent,
  type RunRequest,
  runCancellationSchema,
} from '../../../shared/run-protocol.ts'
import { SSE_HEARTBEAT } from '../../../shared/sse.ts'
import { collect, drain, readUntil } from '../../fixtures/run-stream.ts'
import { startTestService, type TestService } from '../../fixtures/service.ts'
import {
  type ModelsFolder,
  STUDENT_ID,
  TEACHER_ID,
  teacherAndStudent,
} from '../fixtures/models-folder.ts'

const request: RunRequest = {
  classIndex: 7,
  count: 2,
  steps: 6,
  heavySchedule: { every: 3 },
  guidance: 2,
  seed: 5,
  previewEvery: 0,
}

/** The committed model, the default one. */
const MODEL_ID = TEACHER_ID

/** Model calls and steps so far: what "nothing ran" and "no more steps" are measured with. */
async function work(service: TestService) {
  return {
    heavy: await service.metric(`dualrate_model_calls_total{model="heavy",model_id="${MODEL_ID}"}`),
    light: await service.metric(`dualrate_model_calls_total{model="light",model_id="${MODEL_ID}"}`),
    steps: await service.metric('dualrate_steps_total'),
  }
}

async function expectProblem(response: Response, status: number, title: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
  const body = problemSchema.parse(await response.json())
  expect(body).toMatchObject({ type: 'about:blank', status, title })
  return body
}

describe('POST /v1/runs', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService()
  })
  afterAll(() => service.shutdown(0))

  it('streams accepted, started, one step per sampler step and the result, as SSE', async () => {
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, runId: 'stream-1' },
      headers: { 'x-request-id': 'edge-req-1' },
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    expect(response.headers.get('x-request-id')).toBe('edge-req-1')
    const messages = await collect(response)
    expect(messages.map((message) => message.id)).toEqual(messages.map((_, i) => String(i)))
    const events = messages.map((message) => message.event)
    expect(events.map((event) => event.type)).toEqual([
      'accepted',
      'started',
      ...Array(6).fill('step'),
      'result',
    ])
    expect(events[0]).toEqual({ type: 'accepted', runId: 'stream-1', queuePosition: 0 })
    expect(events[1]).toEqual({
      type: 'started',
      runId: 'stream-1',
      modelId: MODEL_ID,
    })
    const steps = events.filter((event) => event.type === 'step')
    expect(steps.map(({ step, heavy }) => [step, heavy])).toEqual([
      [0, true],
      [1, false],
      [2, false],
      [3, true],
      [4, false],
      [5, false],
    ])
    expect(steps.map((event) => event.t)).toEqual([0, 1, 2, 3, 4, 5].map((i) => 1 - i / 6))
    const elapsed = steps.map((event) => event.elapsedMs)
    expect(elapsed).toEqual([...elapsed].sort((a, b) => a - b))
    const result = events.at(-1)
    if (result?.type !== 'result') throw new Error('no result')
    expect(result.timings).toMatchObject({ heavyCalls: 2, lightCalls: 6 })
    expect(result.timings.macs).toBe(2 * 2 * (2 * 320_578_880 + 6 * 17_654_528))
    expect(result.images).toHaveLength(2)
    const png = decode(Buffer.from(result.images[0] as string, 'base64'))
    expect([png.width, png.height, png.channels, png.depth]).toEqual([28, 28, 1, 8])
    // One log line for the request and one for the run, both with the edge's request id.
    const lines = service.logs.filter((line) => line.requestId === 'edge-req-1')
    expect(lines.map((line) => line.msg)).toEqual(expect.arrayContaining(['request', 'run ended']))
    expect(lines.find((line) => line.msg === 'run ended')).toMatchObject({
      runId: 'stream-1',
      outcome: 'completed',
      stepsCompleted: 6,
    })
  })

  it('sends an x0 preview every previewEvery steps and on the last step', async () => {
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, steps: 5, previewEvery: 2 },
    })
    const events = (await collect(response)).map((message) => message.event)
    const previews = events.filter((event) => event.type === 'preview')
    expect(previews.map((event) => event.step)).toEqual([1, 3, 4])
    expect(previews.every((event) => event.images.length === 2)).toBe(true)
    // A preview follows the step it shows; the last one is the result's x0 before the final noise-free step.
    const order = events.map((event) => (event.type === 'step' ? `step ${event.step}` : event.type))
    expect(order.slice(order.indexOf('step 3'), order.indexOf('step 3') + 3)).toEqual([
      'step 3',
      'preview',
      'step 4',
    ])
  })

  it('gives a run the same pixels alone and batched with other runs', async () => {
    const run = async (body: RunRequest) => {
      const events = (
        await collect(await signedFetch(service.client, 'POST', '/v1/runs', { body }))
      ).map((message) => message.event)
      const result = events.at(-1)
      if (result?.type !== 'result') throw new Error(`run ended with ${JSON.stringify(result)}`)
      return result.images
    }
    const target = { ...request, steps: 12, heavySchedule: { every: 4 } }
    // Each request signed once, as the edge does (a repeated signature is refused as a replay).
    const alone = await run({ ...target, runId: 'alone' })
    const before = await work(service)
    const [batched] = await Promise.all([
      run({ ...target, runId: 'batched' }),
      run({ ...target, classIndex: 1, count: 3, seed: 8 }),
      run({
        ...target,
        classIndex: 4,
        count: 1,
        seed: 9,
        guidance: 1,
        heavySchedule: { every: 3 },
      }),
    ])
    const after = await work(service)
    // They shared calls: three runs of 12 steps took fewer than 36 light calls.
    expect(after.steps - before.steps).toBe(36)
    expect(after.light - before.light).toBeLessThan(36)
    expect(batched).toEqual(alone)
  })

  it('refuses a body that fails the schema with 400 problem+json, and runs nothing', async () => {
    const before = await work(service)
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, count: 0, colour: 'red' },
    })
    const body = await expectProblem(response, 400, 'Invalid request')
    expect(body.errors).toEqual([
      { path: 'count', message: 'Too small: expected number to be >=1' },
      { path: '(root)', message: 'Unrecognized key: "colour"' },
    ])
    const malformed = await fetch(`${service.url}/v1/runs`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(await signRequest(service.client.secret, 'POST', '/v1/runs', '{"count":')),
      },
      body: '{"count":',
    })
    await expectProblem(malformed, 400, 'Bad Request')
    expect(await work(service)).toEqual(before)
  })

  it.each([
    ['missing', () => ({}), 'missing signature headers'],
    [
      'stale',
      async () =>
        signRequest(
          service.client.secret,
          'POST',
          '/v1/runs',
          JSON.stringify(request),
          Date.now() - 301_000,
        ),
      'stale timestamp',
    ],
    [
      'wrong',
      async () =>
        signRequest(
          'another-secret-0123456789abcdef0123',
          'POST',
          '/v1/runs',
          JSON.stringify(request),
        ),
      'signature mismatch',
    ],
    [
      'for another body',
      async () =>
        signRequest(
          service.client.secret,
          'POST',
          '/v1/runs',
          JSON.stringify({ ...request, count: 64 }),
        ),
      'signature mismatch',
    ],
    [
      'malformed',
      async () => ({
        ...(await signRequest(service.client.secret, 'POST', '/v1/runs', JSON.stringify(request))),
        [SIGNATURE_HEADER]: 'v1=xyz',
      }),
      'malformed signature',
    ],
  ])(
    'refuses a %s signature with 401 problem+json, and runs nothing',
    async (_, headers, detail) => {
      const before = await work(service)
      const response = await fetch(`${service.url}/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await headers()) },
        body: JSON.stringify(request),
      })
      const body = await expectProblem(response, 401, 'Unauthorized')
      expect(body.detail).toBe(detail)
      expect(await work(service)).toEqual(before)
    },
  )

  it('refuses a body over 64 KiB with 413 before reading it as a run', async () => {
    const before = await work(service)
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, padding: 'x'.repeat(64 * 1024) },
    })
    await expectProblem(response, 413, 'Payload Too Large')
    expect(await work(service)).toEqual(before)
  })

  it('signs DELETE too: an unsigned cancel is refused and the run goes on', async () => {
    const response = await fetch(`${service.url}/v1/runs/any`, { method: 'DELETE' })
    await expectProblem(response, 401, 'Unauthorized')
  })

  it('refuses a runId that is in progress with 409', async () => {
    const body = { ...request, steps: 400, runId: 'twice' }
    const first = await signedFetch(service.client, 'POST', '/v1/runs', { body })
    const { rest } = await readUntil(first, (event) => event.type === 'started')
    // The same body again, signed with another timestamp (a minute earlier, well inside the window),
    // as the edge's fresh signature would be: the same signature would be refused as a replay.
    const second = await signedFetch(service.client, 'POST', '/v1/runs', {
      body,
      now: Date.now() - 60_000,
    })
    await expectProblem(second, 409, 'Run exists')
    expect((await signedFetch(service.client, 'DELETE', '/v1/runs/twice')).status).toBe(200)
    await rest.return(undefined)
  })
})

describe('cancellation', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService()
  })
  afterAll(() => service.shutdown(0))

  it('DELETE /v1/runs/:id stops the run before its next model call and frees its slot', async () => {
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, steps: 500, runId: 'to-cancel' },
    })
    const { events, rest } = await readUntil(
      response,
      (event) => event.type === 'step' && event.step === 2,
    )
    const cancel = await signedFetch(service.client, 'DELETE', '/v1/runs/to-cancel')
    expect(cancel.status).toBe(200)
    const answer = runCancellationSchema.parse(await cancel.json())
    const atCancel = await work(service)
    events.push(...(await drain(rest)))
    const steps = events.filter((event) => event.type === 'step')
    expect(answer).toMatchObject({ runId: 'to-cancel', stepsCompleted: steps.length })
    expect(answer.stepsCompleted).toBeLessThan(20)
    expect(events.at(-1)).toMatchObject({
      type: 'error',
      problem: { status: 409, title: 'Run cancelled' },
    })
    await sleep(300)
    expect(await work(service)).toEqual(atCancel)
    expect(await service.metric('dualrate_active_runs')).toBe(0)
    expect(await service.metric('dualrate_runs_total{outcome="cancelled"}')).toBe(1)
    // Signed with another timestamp (a minute earlier): the first DELETE's signature may be this
    // second's too, and a replay is refused.
    const again = await signedFetch(service.client, 'DELETE', '/v1/runs/to-cancel', {
      now: Date.now() - 60_000,
    })
    await expectProblem(again, 404, 'Run not found')
  })

  it('a client that disconnects stops its run', async () => {
    const abort = new AbortController()
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, steps: 500 },
      signal: abort.signal,
    })
    await readUntil(response, (event) => event.type === 'step' && event.step === 2)
    abort.abort()
    const deadline = Date.now() + 5_000
    while ((await service.metric('dualrate_runs_total{outcome="disconnected"}')) < 1) {
      if (Date.now() > deadline) throw new Error('the run did not stop after the disconnect')
      await sleep(20)
    }
    const atStop = await work(service)
    await sleep(300)
    expect(await work(service)).toEqual(atStop)
    expect(atStop.steps).toBeLessThan(20)
    expect(await service.metric('dualrate_active_runs')).toBe(0)
  })
})

describe('load shedding', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService({
      DUALRATE_MAX_ACTIVE_RUNS: '1',
      DUALRATE_MAX_QUEUED_RUNS: '1',
      DUALRATE_HEARTBEAT_MS: '100',
    })
  })
  afterAll(() => service.shutdown(0))

  it('queues one run behind the active one and answers 503 with Retry-After beyond that', async () => {
    const long = { ...request, steps: 500 }
    const active = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...long, runId: 'active' },
    })
    await readUntil(active, (event) => event.type === 'started')
    const queued = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...long, runId: 'queued' },
    })
    const { events } = await readUntil(queued, (event) => event.type === 'accepted')
    expect(events).toEqual([{ type: 'accepted', runId: 'queued', queuePosition: 0 }])
    expect(await service.metric('dualrate_queue_depth')).toBe(1)

    const shed = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, runId: 'shed' },
    })
    const body = await expectProblem(shed, 503, 'Queue full')
    expect(body.detail).toBe('1 runs are waiting, the limit is 1')
    expect(Number(shed.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(await service.metric('dualrate_runs_total{outcome="rejected"}')).toBe(1)
    // Nothing of it exists: no run to cancel, no run outcome logged.
    await expectProblem(
      await signedFetch(service.client, 'DELETE', '/v1/runs/shed'),
      404,
      'Run not found',
    )
    expect(service.logs.filter((line) => line.runId === 'shed').map((line) => line.msg)).toEqual([
      'run rejected',
    ])
    for (const runId of ['queued', 'active']) {
      expect((await signedFetch(service.client, 'DELETE', `/v1/runs/${runId}`)).status).toBe(200)
    }
  })

  it("keeps a waiting run's stream open with heartbeat comments, in the shared SSE framing", async () => {
    const active = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, steps: 500, runId: 'ahead' },
    })
    await readUntil(active, (event) => event.type === 'started')
    const waiting = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, runId: 'wire' },
    })
    const reader = (waiting.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    let text = ''
    while (!text.includes(SSE_HEARTBEAT)) {
      const { value, done } = await reader.read()
      if (done) throw new Error(`stream ended: ${text}`)
      text += decoder.decode(value, { stream: true })
    }
    expect(text).toBe(
      'event: accepted\nid: 0\ndata: {"type":"accepted","runId":"wire","queuePosition":0}\n\n' +
        ': heartbeat\n\n',
    )
    await reader.cancel()
    expect((await signedFetch(service.client, 'DELETE', '/v1/runs/ahead')).status).toBe(200)
  })
})

describe('POST /v1/runs naming a model', () => {
  let folder: ModelsFolder
  let service: TestService
  beforeAll(async () => {
    folder = await teacherAndStudent()
    service = await startTestService({ DUALRATE_MODELS_DIR: folder.dir })
  })
  afterAll(async () => {
    await service.shutdown(0)
    await folder.remove()
  })

  /** A run at what the student supports: 4 steps, the heavy encoder at 0 and 2, guidance 1. */
  const studentRequest: RunRequest = {
    classIndex: 3,
    count: 2,
    steps: 4,
    heavySchedule: { steps: [0, 2] },
    guidance: 1,
    seed: 6,
    previewEvery: 0,
    model: STUDENT_ID,
  }

  /** A run's events, to its end. */
  async function run(body: RunRequest) {
    const response = await signedFetch(service.client, 'POST', '/v1/runs', { body })
    expect(response.status).toBe(200)
    return (await collect(response)).map((message) => message.event)
  }

  function imagesOf(events: RunEvent[]) {
    const result = events.at(-1)
    if (result?.type !== 'result') throw new Error(`run ended with ${JSON.stringify(result)}`)
    return result.images
  }

  /** Rows of one model's light calls so far, and how many calls. */
  async function lightRows(modelId: string) {
    const labels = `{model="light",model_id="${modelId}"}`
    return {
      rows: await service.metric(`dualrate_batch_rows_sum${labels}`),
      calls: await service.metric(`dualrate_model_calls_total${labels}`),
    }
  }

  it('runs each model, and its started and result events name the model that ran', async () => {
    const onStudent = await run({ ...studentRequest, runId: 'on-student' })
    const onDefault = await run({ ...request, runId: 'on-default' })
    for (const [events, modelId] of [
      [onStudent, STUDENT_ID],
      [onDefault, TEACHER_ID],
    ] as const) {
      expect(events.find((event) => event.type === 'started')).toMatchObject({ modelId })
      expect(events.at(-1)).toMatchObject({ type: 'result', modelId })
    }
    expect(onStudent.filter((event) => event.type === 'step')).toHaveLength(4)
    const ended = service.logs.find(
      (line) => line.msg === 'run ended' && line.runId === 'on-student',
    )
    expect(ended).toMatchObject({ modelId: STUDENT_ID, outcome: 'completed' })
  })

  it('batches each model apart, and a run keeps the pixels it gets alone beside the other model', async () => {
    const teacherRequest = { ...request, steps: 12, heavySchedule: { every: 4 } }
    const alone = {
      teacher: imagesOf(await run({ ...teacherRequest, runId: 'teacher-alone' })),
      student: imagesOf(await run({ ...studentRequest, runId: 'student-alone' })),
    }
    const before = { teacher: await lightRows(TEACHER_ID), student: await lightRows(STUDENT_ID) }
    const [teacher, student] = await Promise.all([
      run({ ...teacherRequest, runId: 'teacher-mixed' }),
      run({ ...studentRequest, runId: 'student-mixed' }),
      run({ ...teacherRequest, classIndex: 1, count: 1, seed: 8, runId: 'teacher-other' }),
    ])
    const after = { teacher: await lightRows(TEACHER_ID), student: await lightRows(STUDENT_ID) }
    expect(imagesOf(teacher as RunEvent[])).toEqual(alone.teacher)
    expect(imagesOf(student as RunEvent[])).toEqual(alone.student)
    // The student's calls held its own rows only (2 images, guidance 1: 2 rows, 4 steps), the default
    // model's calls its two runs' rows (4 + 2 rows, 12 steps), shared: fewer calls than steps.
    expect(after.student.rows - before.student.rows).toBe(2 * 4)
    expect(after.teacher.rows - before.teacher.rows).toBe((4 + 2) * 12)
    expect(after.teacher.calls - before.teacher.calls).toBeLessThan(2 * 12)
  })

  it('refuses a model it has not loaded with 404 of type model-not-loaded, and runs nothing', async () => {
    const before = await work(service)
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, model: 'dualrate-ffffffffffff' },
    })
    expect(response.status).toBe(404)
    expect(response.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
    expect(problemSchema.parse(await response.json())).toMatchObject({
      type: MODEL_NOT_LOADED_PROBLEM,
      status: 404,
      title: 'Model not loaded',
      detail: `model dualrate-ffffffffffff is not loaded here (loaded: ${TEACHER_ID}, ${STUDENT_ID})`,
    })
    expect(await work(service)).toEqual(before)
  })

  it.each([
    ['steps', { steps: 8, heavySchedule: { every: 2 } }, 'this model samples with 4 steps only'],
    [
      'heavySchedule',
      { heavySchedule: { every: 1 } },
      'at 4 steps this model runs the heavy encoder at {"steps":[0,2]} only',
    ],
    ['guidance', { guidance: 2 }, 'this model was distilled at guidance 1 only'],
  ])(
    'refuses %s the model does not support with 400 naming the field, and runs nothing',
    async (path, change, message) => {
      const before = { work: await work(service), student: await lightRows(STUDENT_ID) }
      const response = await signedFetch(service.client, 'POST', '/v1/runs', {
        body: { ...studentRequest, ...change },
      })
      const body = await expectProblem(response, 400, 'Invalid request')
      expect(body.errors).toEqual([{ path, message }])
      expect(body.detail).toBe(`${path}: ${message}`)
      expect({ work: await work(service), student: await lightRows(STUDENT_ID) }).toEqual(before)
    },
  )

  it('runs a calibrated schedule and an adaptive one on the default model, reporting heavy calls per step', async () => {
    const calibrated = await run({
      ...request,
      steps: 50,
      heavySchedule: { calls: 3 },
      runId: 'calibrated',
    })
    const steps = calibrated.filter((event) => event.type === 'step')
    expect(steps.filter((event) => event.heavy).length).toBe(3)
    expect(steps.at(-1)).toMatchObject({ heavyCalls: 3 })
    const adaptive = await run({
      ...request,
      steps: 12,
      heavySchedule: { adaptive: { tolerance: 0.02 } },
      runId: 'adaptive',
    })
    const adaptiveSteps = adaptive.filter((event) => event.type === 'step')
    const heavyCount = adaptiveSteps.filter((event) => event.heavy).length
    expect(adaptiveSteps[0]).toMatchObject({ heavy: true, heavyCalls: 1 })
    expect(adaptiveSteps.at(-1)).toMatchObject({ heavyCalls: heavyCount })
  })

  it('refuses calibrated calls at a step count without placements, and either new schedule on a student', async () => {
    for (const [body, message] of [
      [
        { ...request, steps: 40, heavySchedule: { calls: 3 } },
        '{"calls": N} needs a calibrated placement; this model has them for 50 steps',
      ],
      [
        { ...studentRequest, heavySchedule: { calls: 2 } },
        '{"calls": N} needs a calibrated placement; this model has none',
      ],
    ] as const) {
      const response = await signedFetch(service.client, 'POST', '/v1/runs', { body })
      const problem = await expectProblem(response, 400, 'Invalid request')
      expect(problem.errors).toEqual([{ path: 'heavySchedule', message }])
    }
  })
})
