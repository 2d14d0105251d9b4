// deliverWebhook against a faked fetch: receivers live on .test hosts, and nothing leaves the isolate.
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  DELIVERY_TIMEOUT_MS,
  deliverWebhook,
  type WebhookMessage,
} from '../../../edge/src/webhooks/delivery.ts'

const PUBLIC = { allowHttp: false, allowPrivate: false }

function message(url: string): WebhookMessage {
  return {
    messageId: 'msg_1',
    url,
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    body: '{"type":"generation.succeeded"}',
  }
}

/** Replaces fetch with `answer`; the spy records every call. */
function fakeFetch(answer: (init: RequestInit | undefined) => Promise<Response> | Response) {
  return vi.spyOn(globalThis, 'fetch').mockImplementation(async (_input, init) => answer(init))
}

/** The URL each faked fetch call went to. */
function fetchedUrls(spy: ReturnType<typeof fakeFetch>): string[] {
  return spy.mock.calls.map(([input]) => (input instanceof Request ? input.url : String(input)))
}

afterEach(() => vi.restoreAllMocks())

describe('deliverWebhook', () => {
  it('delivers on a 2xx answer, POSTing the signed body', async () => {
    const spy = fakeFetch(() => new Response(null, { status: 204 }))
    const result = await deliverWebhook(message('https://hooks.test/x'), PUBLIC)
    expect(result).toEqual({ delivered: true, status: 204 })
    expect(fetchedUrls(spy)).toEqual(['https://hooks.test/x'])
    const init = spy.mock.calls[0]?.[1]
    expect(init?.method).toBe('POST')
    expect(init?.body).toBe('{"type":"generation.succeeded"}')
    expect(new Headers(init?.headers).get('webhook-signature')).toMatch(/^v1,/)
  })

  it.each([302, 307])('fails on a %i without fetching its Location', async (status) => {
    const spy = fakeFetch(
      () => new Response(null, { status, headers: { location: 'https://elsewhere.test/y' } }),
    )
    const result = await deliverWebhook(message('https://hooks.test/x'), PUBLIC)
    expect(result).toEqual({
      delivered: false,
      permanent: false,
      status,
      reason: `redirect ${status} not followed`,
    })
    // fetch itself must not follow it either.
    expect(spy.mock.calls[0]?.[1]?.redirect).toBe('manual')
    expect(fetchedUrls(spy)).toEqual(['https://hooks.test/x'])
  })

  it('fails on a 500, keeping nothing of the body', async () => {
    fakeFetch(() => new Response('stack trace with internal secrets', { status: 500 }))
    const result = await deliverWebhook(message('https://hooks.test/x'), PUBLIC)
    expect(result).toEqual({
      delivered: false,
      permanent: false,
      status: 500,
      reason: 'status 500',
    })
  })

  it('fails when the receiver does not answer within DELIVERY_TIMEOUT_MS', async () => {
    // The receiver hangs; the deadline is shortened to 20 ms so the test need not wait 10 s.
    const timeout = AbortSignal.timeout.bind(AbortSignal)
    const timeoutSpy = vi.spyOn(AbortSignal, 'timeout').mockImplementation(() => timeout(20))
    fakeFetch(
      (init) =>
        new Promise((_resolve, reject) => {
          init?.signal?.addEventListener('abort', () => reject(init.signal?.reason))
        }),
    )
    const result = await deliverWebhook(message('https://hooks.test/x'), PUBLIC)
    expect(timeoutSpy).toHaveBeenCalledWith(DELIVERY_TIMEOUT_MS)
    expect(result).toEqual({ delivered: false, permanent: false, reason: 'timeout' })
  })

  it('fails, to be retried, when the connection fails', async () => {
    fakeFetch(() => Promise.reject(new TypeError('Network connection lost.')))
    const result = await deliverWebhook(message('https://hooks.test/x'), PUBLIC)
    expect(result).toEqual({ delivered: false, permanent: false, reason: 'network error' })
  })

  it.each([
    ['https://127.0.0.1/x', 'must not point to a loopback address'],
    ['https://169.254.169.254/latest/meta-data/', 'must not point to a link-local address'],
    ['https://metadata.google.internal/', 'must not point to a local name (.internal)'],
    ['http://hooks.test/x', 'must be an https URL'],
    ['https://user:secret@hooks.test/x', 'must not contain a user name or password'],
  ])('never fetches a refused target (%s), a permanent failure', async (url, targetError) => {
    const spy = fakeFetch(() => new Response(null, { status: 204 }))
    const result = await deliverWebhook(message(url), PUBLIC)
    expect(result).toEqual({
      delivered: false,
      permanent: true,
      reason: `refused target: ${targetError}`,
    })
    expect(spy).not.toHaveBeenCalled()
  })

  it('re-checks under the policy it is given: plain http only when allowed', async () => {
    const spy = fakeFetch(() => new Response(null, { status: 200 }))
    const result = await deliverWebhook(message('http://hooks.test/x'), {
      allowHttp: true,
      allowPrivate: false,
    })
    expect(result).toEqual({ delivered: true, status: 200 })
    expect(fetchedUrls(spy)).toEqual(['http://hooks.test/x'])
  })
})
