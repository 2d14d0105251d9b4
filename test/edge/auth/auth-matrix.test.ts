// Every authenticated route against every way of presenting the wrong key: none gets through, each is
// answered with a problem, and nothing runs. Another tenant's valid key sees the unknown-id 404.
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { API_KEY_PREFIX, hashApiKey } from '../../../edge/src/auth/api-key.ts'
import { call, createKey, postGeneration, uniqueSeed } from '../helpers/api.ts'
import { useFakeBackends } from '../helpers/fake-backends.ts'

const backends = useFakeBackends({
  'http://backend-a.test': { kind: 'ok', stepDelayMs: 20 },
  'http://backend-b.test': { kind: 'ok', stepDelayMs: 20 },
})

type Route = { name: string; request: (id: string, authorization?: string) => Promise<Response> }

const withAuth = (authorization: string | undefined): Record<string, string> =>
  authorization === undefined ? {} : { authorization }

const ROUTES: Route[] = [
  {
    name: 'POST /v1/generations',
    request: (_id, authorization) =>
      call('/v1/generations', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...withAuth(authorization) },
        body: JSON.stringify({ class: 1, steps: 2, seed: uniqueSeed() }),
      }),
  },
  {
    name: 'GET /v1/generations/:id',
    request: (id, authorization) =>
      call(`/v1/generations/${id}`, { headers: withAuth(authorization) }),
  },
  {
    name: 'GET /v1/generations/:id/events',
    request: (id, authorization) =>
      call(`/v1/generations/${id}/events`, { headers: withAuth(authorization) }),
  },
  {
    name: 'POST /v1/generations/:id/cancel',
    request: (id, authorization) =>
      call(`/v1/generations/${id}/cancel`, { method: 'POST', headers: withAuth(authorization) }),
  },
]

async function revokedKey() {
  const key = await createKey()
  await env.API_KEYS.delete(API_KEY_PREFIX + (await hashApiKey(key.key)))
  return key.authorization
}

const WRONG_KEYS: { name: string; authorization: () => Promise<string | undefined> }[] = [
  { name: 'no Authorization header', authorization: async () => undefined },
  { name: 'an empty header', authorization: async () => '' },
  { name: 'a scheme without a key', authorization: async () => 'Bearer ' },
  { name: 'a malformed key', authorization: async () => 'Bearer dr_short' },
  {
    name: 'two keys',
    authorization: async () => `Bearer dr_${'a'.repeat(43)} dr_${'b'.repeat(43)}`,
  },
  { name: 'another scheme', authorization: async () => `Basic ${btoa('user:pass')}` },
  {
    name: 'a well-formed key never issued',
    authorization: async () => `Bearer dr_${'Z'.repeat(43)}`,
  },
  { name: 'a revoked key', authorization: revokedKey },
  {
    name: 'a key with a control character',
    authorization: async () => `Bearer dr_${'x'.repeat(42)}\u0001`,
  },
]

describe('every authenticated route refuses every wrong key with 401 problem+json', () => {
  for (const route of ROUTES) {
    for (const wrong of WRONG_KEYS) {
      it(`${route.name} with ${wrong.name}`, async () => {
        const owner = await createKey()
        const created = await postGeneration(owner.authorization, {
          class: 2,
          steps: 30,
          seed: uniqueSeed(),
        })
        const { id } = (await created.json()) as { id: string }
        const runsBefore = backends().runRequests().length
        let response: Response
        try {
          response = await route.request(id, await wrong.authorization())
        } catch (error) {
          // A header the runtime itself refuses to send never reached the API.
          expect(String(error)).toMatch(/header/i)
          return
        }
        expect(response.status).toBe(401)
        expect(response.headers.get('content-type')).toBe('application/problem+json')
        expect(await response.json()).toMatchObject({ type: '/problems/unauthorized', status: 401 })
        expect(backends().runRequests().length).toBe(runsBefore)
        await env.GENERATION_JOB.getByName(id).cancel(owner.id)
      })
    }
  }
})

describe('another tenant’s valid key', () => {
  for (const route of ROUTES.slice(1)) {
    it(`${route.name} answers 404 and changes nothing`, async () => {
      const owner = await createKey()
      const other = await createKey()
      const created = await postGeneration(owner.authorization, {
        class: 3,
        steps: 30,
        seed: uniqueSeed(),
      })
      const { id } = (await created.json()) as { id: string }
      const response = await route.request(id, other.authorization)
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ type: '/problems/not-found', status: 404 })
      const view = await env.GENERATION_JOB.getByName(id).snapshot(owner.id)
      expect(view?.status).not.toBe('canceled')
      await env.GENERATION_JOB.getByName(id).cancel(owner.id)
    })
  }
})
