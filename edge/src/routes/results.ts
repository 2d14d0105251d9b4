// GET /v1/results/:name: finished images, from the Cache API in front of R2. Keys name their content, so
// responses are immutable with a strong ETag, and If-None-Match answers 304.
import { createRoute, z } from '@hono/zod-openapi'
import { createApiApp, problemResponseDoc } from '../http/openapi-app.ts'
import { notFound } from '../problems/api-error.ts'
import { imageObjectKey, parseImageName } from '../results/result-store.ts'

export const IMMUTABLE = 'public, max-age=31536000, immutable'

const getResultImage = createRoute({
  method: 'get',
  path: '/v1/results/{name}',
  operationId: 'getResultImage',
  summary: 'Get a result image',
  description:
    '`<key>.png` for a single image, `<key>-<i>.png` for image i of several. Public, immutable, ' +
    'cacheable; keys are unguessable.',
  // Public: no API key.
  security: [],
  request: {
    params: z.object({ name: z.string().max(80) }),
  },
  responses: {
    200: { description: 'The PNG', content: { 'image/png': { schema: z.string() } } },
    304: { description: 'Not modified (If-None-Match matched the ETag)' },
    404: problemResponseDoc('No such result'),
  },
})

export const results = createApiApp()

results.openapi(getResultImage, async (c) => {
  const name = c.req.valid('param').name
  const image = parseImageName(name)
  if (!image) throw notFound(`No result ${name}.`)
  const cache = caches.default
  const cacheKey = new Request(new URL(`/v1/results/${name}`, c.req.url), { method: 'GET' })
  let response = await cache.match(cacheKey)
  if (!response) {
    const object = await c.env.RESULTS.get(imageObjectKey(image.key, image.index))
    if (!object) throw notFound(`No result ${name}.`)
    response = new Response(object.body, {
      headers: {
        'content-type': 'image/png',
        'content-length': String(object.size),
        etag: object.httpEtag,
        'cache-control': IMMUTABLE,
      },
    })
    c.executionCtx.waitUntil(cache.put(cacheKey, response.clone()))
  }
  const etag = response.headers.get('etag') ?? ''
  if (etagMatches(c.req.header('if-none-match'), etag)) {
    await response.body?.cancel()
    return c.body(null, 304, { etag, 'cache-control': IMMUTABLE })
  }
  // A fresh Response: the cached one's headers are immutable, and middleware still adds its own.
  return new Response(response.body, { status: 200, headers: response.headers }) as never
})

/** RFC 9110 section 13.1.2: If-None-Match uses weak comparison; `*` matches any current entity. */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header || !etag) return false
  if (header.trim() === '*') return true
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '')
  return header.split(',').some((candidate) => opaque(candidate) === opaque(etag))
}
