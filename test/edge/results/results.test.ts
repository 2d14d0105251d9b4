import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { call, createKey, postGeneration, uniqueSeed } from '../helpers/api.ts'
import { TINY_PNG_BASE64, useFakeBackends } from '../helpers/fake-backends.ts'

useFakeBackends()

async function finishedJob(body: Record<string, unknown>) {
  const { authorization } = await createKey()
  const response = await postGeneration(
    authorization,
    { seed: uniqueSeed(), ...body },
    { prefer: 'wait=10' },
  )
  const job = (await response.json()) as { id: string; status: string; urls: { images: string[] } }
  expect(job.status).toBe('succeeded')
  return job
}

const pngBytes = Uint8Array.from(atob(TINY_PNG_BASE64), (char) => char.charCodeAt(0))

describe('GET /v1/results/:key.png', () => {
  it('serves the PNG with a strong ETag and an immutable Cache-Control', async () => {
    const job = await finishedJob({ class: 1, steps: 2 })
    const response = await call(new URL(job.urls.images[0] ?? '').pathname)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('image/png')
    expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    expect(response.headers.get('etag')).toMatch(/^"[^"]+"$/)
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(pngBytes)
  })

  it('answers 304 to If-None-Match with the current ETag', async () => {
    const job = await finishedJob({ class: 1, steps: 2 })
    const path = new URL(job.urls.images[0] ?? '').pathname
    const etag = (await call(path)).headers.get('etag') ?? ''
    const revalidated = await call(path, { headers: { 'if-none-match': etag } })
    expect(revalidated.status).toBe(304)
    expect(revalidated.headers.get('etag')).toBe(etag)
    expect(await revalidated.text()).toBe('')
    const stale = await call(path, { headers: { 'if-none-match': '"something-else"' } })
    expect(stale.status).toBe(200)
  })

  it('serves later requests from the Cache API, without reading R2', async () => {
    const job = await finishedJob({ class: 2, steps: 2 })
    const path = new URL(job.urls.images[0] ?? '').pathname
    expect((await call(path)).status).toBe(200)
    // Give the background cache.put a moment, then remove the object: only the cache can answer.
    await new Promise((resolve) => setTimeout(resolve, 50))
    await env.RESULTS.delete(`results/${job.id}/0.png`)
    const cached = await call(path)
    expect(cached.status).toBe(200)
    expect(new Uint8Array(await cached.arrayBuffer())).toEqual(pngBytes)
  })

  it('gives each image of a multi-image job its own key', async () => {
    const job = await finishedJob({ class: 3, steps: 2, count: 3 })
    expect(job.urls.images).toEqual(
      [0, 1, 2].map((index) => `https://edge.test/v1/results/${job.id}-${index}.png`),
    )
    for (const url of job.urls.images) expect((await call(new URL(url).pathname)).status).toBe(200)
  })

  it('answers 404 problem+json for an unknown or malformed key', async () => {
    const unknown = await call(`/v1/results/${'0'.repeat(64)}.png`)
    expect(unknown.status).toBe(404)
    expect(unknown.headers.get('content-type')).toBe('application/problem+json')
    expect((await call('/v1/results/..%2Fsecret.png')).status).toBe(404)
  })
})
