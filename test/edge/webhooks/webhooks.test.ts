import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { Webhook } from 'standardwebhooks'
import { describe, expect, it } from 'vitest'
import { RETRY_DELAYS_MS } from '../../../edge/src/webhooks/delivery.ts'
import { MAX_ENDPOINTS_PER_RUN } from '../../../edge/src/webhooks/outbox.ts'
import { signWebhook } from '../../../edge/src/webhooks/standard-webhooks.ts'
import { createKey, postGeneration, uniqueSeed, until } from '../helpers/api.ts'
import { type RecordedRequest, useFakeBackends } from '../helpers/fake-backends.ts'

const HOOK = 'http://hooks.test/dualrate'

const backends = useFakeBackends()

const hookCalls = () => backends().requests.filter((request) => request.url === HOOK)

function verify(secret: string, request: RecordedRequest) {
  return new Webhook(secret).verify(request.body, {
    'webhook-id': request.headers.get('webhook-id') ?? '',
    'webhook-timestamp': request.headers.get('webhook-timestamp') ?? '',
    'webhook-signature': request.headers.get('webhook-signature') ?? '',
  })
}

describe('signWebhook', () => {
  it('produces signatures the Standard Webhooks reference library accepts', async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const body = JSON.stringify({ type: 'generation.succeeded', data: { id: 'x' } })
    const headers = await signWebhook(secret, 'msg_1', new Date(), body)
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/)
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body))
  })

  it('is rejected by the library when the body changes', async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const headers = await signWebhook(secret, 'msg_1', new Date(), '{"a":1}')
    expect(() => new Webhook(secret).verify('{"a":2}', { ...headers })).toThrow(
      'No matching signature found',
    )
  })
})

describe('webhook delivery', () => {
  it('POSTs a signed generation.succeeded message when the job ends', async () => {
    const { authorization, record } = await createKey()
    const response = await postGeneration(authorization, {
      class: 1,
      steps: 2,
      seed: uniqueSeed(),
      webhookUrl: HOOK,
    })
    const { id } = (await response.json()) as { id: string }
    await until(() => hookCalls().length === 1)
    const [delivery] = hookCalls()
    if (!delivery) throw new Error('no delivery')
    expect(delivery.headers.get('content-type')).toBe('application/json')
    expect(verify(record.webhookSecret, delivery)).toMatchObject({
      type: 'generation.succeeded',
      data: { id, status: 'succeeded', images: [`https://edge.test/v1/results/${id}.png`] },
    })
  })

  it('retries a failed delivery with backoff, keeping the same webhook-id', async () => {
    let answers = [500]
    backends().webhookStatus = () => answers.shift() ?? 204
    const { authorization, record } = await createKey()
    const response = await postGeneration(authorization, {
      class: 2,
      steps: 2,
      seed: uniqueSeed(),
      webhookUrl: HOOK,
    })
    const { id } = (await response.json()) as { id: string }
    const stub = env.GENERATION_JOB.getByName(id)
    await until(async () => (await stub.webhookDeliveries())[0]?.attempts === 1)
    const failedAt = Date.now()
    const [delivery] = await stub.webhookDeliveries()
    expect(hookCalls()).toHaveLength(1)
    expect(delivery?.deliveredAt).toBeNull()
    expect(delivery?.nextAt).toBeGreaterThanOrEqual(failedAt + RETRY_DELAYS_MS[0] - 1_000)
    expect(delivery?.nextAt).toBeLessThanOrEqual(failedAt + RETRY_DELAYS_MS[0] + 1_000)
    // Make the retry due now instead of in 5 s, then let the alarm run.
    await runInDurableObject(stub, (_instance, object) => {
      object.storage.sql.exec('UPDATE webhooks SET next_at = ?', Date.now() - 1)
    })
    answers = []
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    const retried = hookCalls()
    expect(retried).toHaveLength(2)
    expect(retried[1]?.headers.get('webhook-id')).toBe(retried[0]?.headers.get('webhook-id'))
    if (retried[1]) expect(verify(record.webhookSecret, retried[1])).toMatchObject({ data: { id } })
    const [after] = await stub.webhookDeliveries()
    expect(after).toMatchObject({ attempts: 2, nextAt: null })
    expect(after?.deliveredAt).toEqual(expect.any(Number))
  })
})

describe('webhook targets', () => {
  const refused = [
    'https://127.0.0.1/hook',
    'https://[::1]/hook',
    'https://localhost/hook',
    'https://2130706433/hook',
    'https://10.0.0.8/hook',
    'https://169.254.169.254/latest/meta-data/',
    'https://[::ffff:192.168.0.1]/hook',
    'https://metadata.google.internal/hook',
    'http://0x7f.1/hook',
  ]
  for (const url of refused) {
    it(`refuses ${url} at submit with 400 naming webhookUrl, and never sends to it`, async () => {
      const { authorization } = await createKey()
      const response = await postGeneration(authorization, {
        class: 1,
        steps: 2,
        seed: uniqueSeed(),
        webhookUrl: url,
      })
      expect(response.status).toBe(400)
      const problem = (await response.json()) as { errors: { field: string; message: string }[] }
      expect(problem.errors).toEqual([
        { field: 'webhookUrl', message: expect.stringMatching(/^must not point to /) },
      ])
      expect(backends().requests).toEqual([])
    })
  }

  it('caps the endpoints waiting on one run (409 problem past the cap)', async () => {
    backends().set('http://backend-a.test', { kind: 'ok', stepDelayMs: 50 })
    backends().set('http://backend-b.test', { kind: 'ok', stepDelayMs: 50 })
    const { authorization, id: owner } = await createKey({ concurrentJobs: 1 })
    const body = { class: 3, steps: 100, seed: uniqueSeed() }
    let jobId = ''
    for (let index = 0; index < MAX_ENDPOINTS_PER_RUN; index++) {
      const response = await postGeneration(authorization, {
        ...body,
        webhookUrl: `${HOOK}/${index}`,
      })
      expect(response.status).toBe(202)
      jobId = ((await response.json()) as { id: string }).id
    }
    const over = await postGeneration(authorization, { ...body, webhookUrl: `${HOOK}/over` })
    expect(over.status).toBe(409)
    expect(await over.json()).toMatchObject({ type: '/problems/webhook-limit', status: 409 })
    await env.GENERATION_JOB.getByName(jobId).cancel(owner)
  })

  it('claims a delivery with a lease, so the row stays due while the receiver has not answered', async () => {
    backends().webhookStatus = () => 'hang'
    const { authorization } = await createKey()
    const response = await postGeneration(authorization, {
      class: 4,
      steps: 2,
      seed: uniqueSeed(),
      webhookUrl: HOOK,
    })
    const { id } = (await response.json()) as { id: string }
    const stub = env.GENERATION_JOB.getByName(id)
    await until(() => hookCalls().length === 1)
    const [claimed] = await stub.webhookDeliveries()
    expect(claimed).toMatchObject({ attempts: 1, deliveredAt: null, givenUpAt: null })
    // A crash now would leave this row due again at the lease's end (not unscheduled and lost).
    expect(claimed?.nextAt).toEqual(expect.any(Number))
    expect(claimed?.leaseUntil).toBeGreaterThan(Date.now())
  })

  it('redelivers a message whose delivery was cut off by a crash, once its lease has passed', async () => {
    const { authorization, record } = await createKey()
    const response = await postGeneration(authorization, {
      class: 5,
      steps: 2,
      seed: uniqueSeed(),
      webhookUrl: HOOK,
    })
    const { id } = (await response.json()) as { id: string }
    const stub = env.GENERATION_JOB.getByName(id)
    await until(() => hookCalls().length === 1)
    await until(async () => (await stub.webhookDeliveries())[0]?.deliveredAt !== null)
    // The row as a crash right after the claim leaves it: attempted once, lease over, no answer.
    await runInDurableObject(stub, async (_instance, object) => {
      object.storage.sql.exec(
        'UPDATE webhooks SET attempts = 1, lease_until = ?, next_at = ?, delivered_at = NULL',
        Date.now() - 1,
        Date.now() - 30_000,
      )
      await object.storage.setAlarm(Date.now() + 60_000)
    })
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    const [after] = await stub.webhookDeliveries()
    expect(after).toMatchObject({ attempts: 2, nextAt: null })
    expect(after?.deliveredAt).toEqual(expect.any(Number))
    const calls = hookCalls()
    expect(calls).toHaveLength(2)
    expect(calls[1]?.headers.get('webhook-id')).toBe(calls[0]?.headers.get('webhook-id'))
    if (calls[1]) expect(verify(record.webhookSecret, calls[1])).toMatchObject({ data: { id } })
  })
})
