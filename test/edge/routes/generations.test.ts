import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { verifyRequest } from '../../../shared/request-signature.ts'
import { call, createKey, postGeneration, readEvents, uniqueSeed } from '../helpers/api.ts'
import { useFakeBackends } from '../helpers/fake-backends.ts'

const BACKEND_SECRET = 'test-backend-secret-0123456789abcdef'

type Job = {
  id: string
  status: string
  request: { seed: number; classIndex: number; className: string; steps: number }
  progress: { step: number; totalSteps: number; attempts: number }
  urls: { self: string; events: string; cancel: string; images?: string[] }
}

const backends = useFakeBackends()

const path = (url: string) => new URL(url).pathname

async function runToEnd(authorization: string, job: Job) {
  return readEvents(await call(path(job.urls.events), { headers: { authorization } }))
}

describe('POST /v1/generations', () => {
  it('answers 202 with the job and its URLs; the job runs to success', async () => {
    const { authorization } = await createKey()
    const response = await postGeneration(authorization, {
      class: 'Sneaker',
      steps: 8,
      seed: uniqueSeed(),
    })
    expect(response.status).toBe(202)
    const job = (await response.json()) as Job
    expect(job).toMatchObject({
      status: 'queued',
      request: { classIndex: 7, className: 'Sneaker', steps: 8 },
    })
    expect(job.id).toMatch(/^[0-9a-f]{64}$/)
    expect(response.headers.get('location')).toBe(`https://edge.test/v1/generations/${job.id}`)
    const events = await runToEnd(authorization, job)
    expect(events.map((event) => event.event)).toEqual([
      'queued',
      'started',
      ...Array(8).fill('step'),
      'succeeded',
    ])
    const done = (await (
      await call(path(job.urls.self), { headers: { authorization } })
    ).json()) as Job
    expect(done.status).toBe('succeeded')
    expect(done.progress).toEqual({ step: 8, totalSteps: 8, attempts: 1 })
    expect(done.urls.images).toEqual([`https://edge.test/v1/results/${job.id}.png`])
  })

  it("runs the default model's recommended calibrated calls at its steps, and every ceil(50 / calls) steps at others", async () => {
    const { authorization } = await createKey()
    const at = async (steps: number) =>
      (
        (await (
          await postGeneration(authorization, { class: 1, steps, seed: uniqueSeed() })
        ).json()) as Job & { request: { heavySchedule: unknown } }
      ).request.heavySchedule
    expect(await at(50)).toEqual({ calls: 5 })
    expect(await at(20)).toEqual({ every: 10 })
  })

  it('draws a seed when none is given and returns it', async () => {
    const { authorization } = await createKey()
    const first = (await (
      await postGeneration(authorization, { class: 1, steps: 2 })
    ).json()) as Job
    const second = (await (
      await postGeneration(authorization, { class: 1, steps: 2 })
    ).json()) as Job
    expect(Number.isInteger(first.request.seed)).toBe(true)
    expect(first.request.seed).not.toBe(second.request.seed)
    expect(first.id).not.toBe(second.id)
  })

  it('signs the backend request with the shared HMAC secret and forwards the request id', async () => {
    const { authorization } = await createKey()
    const seed = uniqueSeed()
    const job = (await (
      await postGeneration(
        authorization,
        { class: 3, steps: 3, seed, guidance: 1.5 },
        { 'x-request-id': 'req-signed-1' },
      )
    ).json()) as Job
    await runToEnd(authorization, job)
    const [sent] = backends().runRequests()
    expect(sent).toBeDefined()
    if (!sent) return
    const check = await verifyRequest(BACKEND_SECRET, 'POST', '/v1/runs', sent.body, (name) =>
      sent.headers.get(name),
    )
    expect(check).toEqual({ ok: true })
    expect(sent.headers.get('x-request-id')).toBe('req-signed-1')
    expect(JSON.parse(sent.body)).toMatchObject({
      classIndex: 3,
      steps: 3,
      seed,
      guidance: 1.5,
      count: 1,
    })
  })

  it('with Prefer: wait=N holds the request and answers 200 when the job ends in time', async () => {
    const { authorization } = await createKey()
    const response = await postGeneration(
      authorization,
      { class: 0, steps: 4, seed: uniqueSeed() },
      { prefer: 'wait=10' },
    )
    expect(response.status).toBe(200)
    expect(response.headers.get('preference-applied')).toBe('wait=10')
    expect(((await response.json()) as Job).status).toBe('succeeded')
  })

  it('answers a repeated request from cache with 200 and makes no backend call', async () => {
    const { authorization } = await createKey()
    const body = { class: 'Bag', steps: 5, seed: uniqueSeed() }
    const first = (await (
      await postGeneration(authorization, body, { prefer: 'wait=10' })
    ).json()) as Job
    expect(first.status).toBe('succeeded')
    const callsBefore = backends().runRequests().length
    const again = await postGeneration(authorization, body)
    expect(again.status).toBe(200)
    const cached = (await again.json()) as Job
    expect(cached).toMatchObject({ id: first.id, status: 'succeeded' })
    expect(cached.urls.images).toEqual(first.urls.images)
    expect(backends().runRequests().length).toBe(callsBefore)
  })

  it('shares one job between identical requests in flight (single-flight)', async () => {
    backends().set('http://backend-a.test', { kind: 'ok', stepDelayMs: 20 })
    backends().set('http://backend-b.test', { kind: 'ok', stepDelayMs: 20 })
    const alice = await createKey()
    const bob = await createKey()
    const body = { class: 2, steps: 6, seed: uniqueSeed() }
    const [a, b] = await Promise.all([
      postGeneration(alice.authorization, body),
      postGeneration(bob.authorization, body),
    ])
    const [jobA, jobB] = (await Promise.all([a.json(), b.json()])) as [Job, Job]
    expect(jobA.id).toBe(jobB.id)
    await runToEnd(alice.authorization, jobA)
    expect(backends().runRequests()).toHaveLength(1)
  })

  it('ignores the preview cadence in the result key: it does not change the pixels', async () => {
    const { authorization } = await createKey()
    const seed = uniqueSeed()
    const plain = (await (
      await postGeneration(authorization, { class: 4, steps: 2, seed })
    ).json()) as Job
    const withPreviews = (await (
      await postGeneration(authorization, { class: 4, steps: 2, seed, previewEvery: 1 })
    ).json()) as Job
    expect(withPreviews.id).toBe(plain.id)
  })
})

describe('POST /v1/generations validation', () => {
  it('rejects guidance above 20 and unknown fields with 400 listing each field', async () => {
    const { authorization } = await createKey()
    const response = await postGeneration(authorization, { class: 1, guidance: 25, colour: 'red' })
    expect(response.status).toBe(400)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    const problem = (await response.json()) as {
      type: string
      errors: { field: string; message: string }[]
    }
    expect(problem.type).toBe('/problems/validation')
    expect(problem.errors.map((error) => error.field).sort()).toEqual(['(root)', 'guidance'])
    expect(problem.errors.find((error) => error.field === '(root)')?.message).toMatch(/colour/)
  })

  it('rejects an unknown class name with 400 naming the field and the valid names', async () => {
    const { authorization } = await createKey()
    const response = await postGeneration(authorization, { class: 'Hat' })
    expect(response.status).toBe(400)
    const problem = (await response.json()) as { errors: { field: string; message: string }[] }
    expect(problem.errors).toEqual([
      { field: 'class', message: expect.stringContaining('Ankle boot') },
    ])
  })

  it('rejects a heavy step past the last step with 400 at its index', async () => {
    const { authorization } = await createKey()
    const response = await postGeneration(authorization, {
      class: 1,
      steps: 4,
      heavySchedule: { steps: [0, 9] },
    })
    expect(response.status).toBe(400)
    const problem = (await response.json()) as { errors: { field: string }[] }
    expect(problem.errors.map((error) => error.field)).toEqual(['heavySchedule.steps[1]'])
  })

  it('rejects a body that is not JSON with 400 problem+json', async () => {
    const { authorization } = await createKey()
    const response = await call('/v1/generations', {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: '{"class": 1,',
    })
    expect(response.status).toBe(400)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
  })

  it('rejects a body above the size limit with 413', async () => {
    const { authorization } = await createKey()
    const response = await call('/v1/generations', {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ class: 1, padding: 'x'.repeat(20_000) }),
    })
    expect(response.status).toBe(413)
    expect(((await response.json()) as { type: string }).type).toBe('/problems/payload-too-large')
  })

  it('rejects a plain-http webhook URL unless the configuration allows it', async () => {
    const { authorization } = await createKey()
    const response = await postGeneration(authorization, {
      class: 1,
      webhookUrl: 'ftp://hooks.example/x',
    })
    expect(response.status).toBe(400)
    const problem = (await response.json()) as { errors: { field: string }[] }
    expect(problem.errors.map((error) => error.field)).toEqual(['webhookUrl'])
  })
})

describe('Idempotency-Key', () => {
  it('returns the same job, drawn seed included, when a request is retried with the same key', async () => {
    const { authorization } = await createKey()
    const headers = { 'idempotency-key': `retry-${uniqueSeed()}` }
    const first = (await (
      await postGeneration(authorization, { class: 5, steps: 3 }, headers)
    ).json()) as Job
    const retry = (await (
      await postGeneration(authorization, { class: 5, steps: 3 }, headers)
    ).json()) as Job
    expect(retry.id).toBe(first.id)
    expect(retry.request.seed).toBe(first.request.seed)
  })

  it('answers 422 when the same key comes with another body', async () => {
    const { authorization } = await createKey()
    const headers = { 'idempotency-key': `clash-${uniqueSeed()}` }
    await postGeneration(authorization, { class: 5, steps: 3 }, headers)
    const clash = await postGeneration(authorization, { class: 6, steps: 3 }, headers)
    expect(clash.status).toBe(422)
    expect(((await clash.json()) as { type: string }).type).toBe('/problems/idempotency-mismatch')
  })

  it('scopes keys to the API key that used them', async () => {
    const alice = await createKey()
    const bob = await createKey()
    const headers = { 'idempotency-key': `shared-${uniqueSeed()}` }
    await postGeneration(alice.authorization, { class: 5, steps: 3 }, headers)
    const other = await postGeneration(bob.authorization, { class: 6, steps: 3 }, headers)
    expect(other.status).toBe(202)
  })
})

describe('GET /v1/generations/:id', () => {
  it('answers 404 problem+json for an unknown id', async () => {
    const { authorization } = await createKey()
    const response = await call(`/v1/generations/${'ab'.repeat(32)}`, {
      headers: { authorization },
    })
    expect(response.status).toBe(404)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
  })

  it('answers 400 for an id that is not a generation id', async () => {
    const { authorization } = await createKey()
    const response = await call('/v1/generations/not-an-id', { headers: { authorization } })
    expect(response.status).toBe(400)
  })
})

describe('POST /v1/generations/:id/cancel', () => {
  it('stops the backend run (aborted and DELETEd on the backend) and ends the job as canceled', async () => {
    backends().set('http://backend-a.test', { kind: 'ok', stepDelayMs: 50 })
    backends().set('http://backend-b.test', { kind: 'ok', stepDelayMs: 50 })
    const { authorization } = await createKey()
    const job = (await (
      await postGeneration(authorization, { class: 8, steps: 200, seed: uniqueSeed() })
    ).json()) as Job
    const stream = await call(path(job.urls.events), { headers: { authorization } })
    const reading = readEvents(stream)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const cancel = await call(path(job.urls.cancel), { method: 'POST', headers: { authorization } })
    expect(cancel.status).toBe(200)
    expect(((await cancel.json()) as Job).status).toBe('canceled')
    const events = await reading
    expect(events.at(-1)?.event).toBe('canceled')
    const [run] = backends().runRequests()
    const runId = JSON.parse(run?.body ?? '{}').runId as string
    expect(backends().aborted).toContain(runId)
    const deletes = backends().requests.filter((request) => request.method === 'DELETE')
    expect(deletes.map((request) => path(request.url))).toEqual([`/v1/runs/${runId}`])
    const stepsSeen = events.filter((event) => event.event === 'step').length
    expect(stepsSeen).toBeLessThan(200)
  })

  it('frees the concurrent-jobs slot of the canceled job', async () => {
    backends().set('http://backend-a.test', { kind: 'ok', stepDelayMs: 50 })
    backends().set('http://backend-b.test', { kind: 'ok', stepDelayMs: 50 })
    const { authorization, id } = await createKey({ concurrentJobs: 1 })
    const job = (await (
      await postGeneration(authorization, { class: 8, steps: 200, seed: uniqueSeed() })
    ).json()) as Job
    const blocked = await postGeneration(authorization, {
      class: 8,
      steps: 200,
      seed: uniqueSeed(),
    })
    expect(blocked.status).toBe(429)
    await call(path(job.urls.cancel), { method: 'POST', headers: { authorization } })
    expect(await env.KEY_QUOTA.getByName(id).activeJobs()).toEqual([])
  })
})
