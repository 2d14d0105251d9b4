import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { API_KEY_PREFIX, hashApiKey } from '../../../edge/src/auth/api-key.ts'
import { call, createKey, postGeneration } from '../helpers/api.ts'

async function expectUnauthorized(response: Response, detail: RegExp) {
  expect(response.status).toBe(401)
  expect(response.headers.get('content-type')).toBe('application/problem+json')
  expect(response.headers.get('www-authenticate')).toBe('Bearer realm="dualrate"')
  const problem = (await response.json()) as { type: string; detail: string; requestId: string }
  expect(problem.type).toBe('/problems/unauthorized')
  expect(problem.detail).toMatch(detail)
  expect(problem.requestId).toBe(response.headers.get('x-request-id'))
}

describe('API key authentication', () => {
  it('answers 401 problem+json without an Authorization header', async () => {
    await expectUnauthorized(await call('/v1/generations', { method: 'POST' }), /Bearer <key>/)
  })

  it('answers 401 for a well-formed key that was never issued', async () => {
    const forged = `dr_${'A'.repeat(43)}`
    await expectUnauthorized(await postGeneration(`Bearer ${forged}`, { class: 1 }), /not valid/)
  })

  it('answers 401 for a malformed key and another scheme', async () => {
    await expectUnauthorized(await postGeneration('Bearer short', { class: 1 }), /not valid/)
    const { key } = await createKey()
    await expectUnauthorized(await postGeneration(`Basic ${key}`, { class: 1 }), /not valid/)
  })

  it('stores only the SHA-256 of a key, with its name and limits', async () => {
    const { key } = await createKey({ requestsPerMinute: 7 }, 'stored-form')
    const stored = await env.API_KEYS.get(API_KEY_PREFIX + (await hashApiKey(key)), 'json')
    expect(stored).toMatchObject({ name: 'stored-form', limits: { requestsPerMinute: 7 } })
    const all = await env.API_KEYS.list()
    expect(JSON.stringify(all)).not.toContain(key)
  })

  it('accepts a valid key and refuses it once revoked (deleted from KV)', async () => {
    const { authorization, key } = await createKey()
    const before = await call(`/v1/generations/${'cd'.repeat(32)}`, { headers: { authorization } })
    expect(before.status).toBe(404)
    await env.API_KEYS.delete(API_KEY_PREFIX + (await hashApiKey(key)))
    // Locally the deletion is seen at once; at the edge a KV read may be cached for up to 60 s.
    const after = await call(`/v1/generations/${'cd'.repeat(32)}`, { headers: { authorization } })
    expect(after.status).toBe(401)
  })
})
