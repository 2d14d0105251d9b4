import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { Webhook } from 'standardwebhooks'
import { describe, expect, it } from 'vitest'
import { RETRY_DELAYS_MS } from '../../../edge/src/webhooks/delivery.ts'
import { signWebhook } from '../../../edge/src/webhooks/standard-webhooks.ts'
import { createKey, postGeneration, uniqueSeed } from '../helpers/api.ts'
import { type RecordedRequest, useFakeBackends } from '../helpers/fake-backends.ts'

const HOOK = 'http://hooks.test/dualrate'

const backends = useFakeBackends()

const hookCalls = () => backends().requests.filter((request) => request.url === HOOK)

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 3_000) {
  const started = Date.now()
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

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
