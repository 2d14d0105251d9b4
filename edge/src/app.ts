// The edge API: middleware shared by every route (request id, security headers, CORS), the routes, the
// OpenAPI document and reference page, and the one error handler that answers with problem+json.
import { OpenAPIHono } from '@hono/zod-openapi'
import { cors } from 'hono/cors'
import { HTTPException } from 'hono/http-exception'
import { requestId } from 'hono/request-id'
import { secureHeaders } from 'hono/secure-headers'
import { PROBLEM_TYPES } from '../../shared/problem.ts'
import { readConfig } from './env.ts'
import type { AppEnv } from './http/app-env.ts'
import { problemResponse } from './http/problem.ts'
import { bundledCatalog } from './models/catalog.ts'
import { renderReferencePage } from './openapi/reference-page.ts'
import { ApiError } from './problems/api-error.ts'
import { generations } from './routes/generations.ts'
import { models } from './routes/models.ts'
import { results } from './routes/results.ts'

export const OPENAPI_INFO = {
  title: 'Dual-Rate image API',
  version: '1.0.0',
  description:
    'Class-conditional image generation: a heavy context encoder every K steps, a light denoiser ' +
    `every step. GET /v1/models lists the models (default \`${bundledCatalog.defaultModel.id}\`). ` +
    'Jobs stream progress over SSE; results are immutable URLs.',
  // package.json declares no license (private, "UNLICENSED" in npm's terms): all rights reserved. SPDX
  // has no identifier for that; LicenseRef- is its form for a license outside its list.
  license: {
    name: 'UNLICENSED: proprietary, no license is granted',
    identifier: 'LicenseRef-Proprietary',
  },
}

/**
 * The document's top level. The first server is relative, so it is right wherever the document is
 * served from: a deployed edge (its custom domain) or the local stack; the second names the local stack
 * for a copy of the document read elsewhere.
 */
export const OPENAPI_CONFIG = {
  openapi: '3.1.0',
  info: OPENAPI_INFO,
  servers: [
    { url: '/', description: 'The edge that served this document' },
    {
      url: 'http://127.0.0.1:8787',
      description: 'Local development: `npm start` or `npm run dev:edge` on the default port',
    },
  ],
}

export const app = new OpenAPIHono<AppEnv>()

app.use(requestId())
app.use(
  secureHeaders({
    contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    crossOriginResourcePolicy: 'cross-origin',
  }),
)
app.use(async function corsFromConfig(c, next) {
  const allowed = readConfig(c.env).corsOrigins
  return cors({
    origin: (origin) => (allowed.includes('*') || allowed.includes(origin) ? origin : null),
    allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'Prefer', 'Last-Event-ID'],
    allowMethods: ['GET', 'POST', 'OPTIONS'],
    exposeHeaders: [
      'Location',
      'ETag',
      'Retry-After',
      'RateLimit',
      'RateLimit-Policy',
      'Preference-Applied',
      'X-Request-Id',
    ],
    maxAge: 600,
  })(c, next)
})

app.route('/', generations)
app.route('/', results)
app.route('/', models)

app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
  type: 'http',
  scheme: 'bearer',
  description: 'An API key created with `npm run keys -- create`.',
})
app.doc31('/openapi.json', OPENAPI_CONFIG)
app.get('/docs', (c) => {
  c.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
  return c.html(renderReferencePage(openApiDocument()))
})

/**
 * The OpenAPI 3.1 document GET /openapi.json serves, built without a request (`npm run lint:openapi`).
 *
 * @example
 * writeFileSync('openapi.json', JSON.stringify(openApiDocument()))
 */
export function openApiDocument() {
  return app.getOpenAPI31Document(OPENAPI_CONFIG)
}

app.notFound((c) =>
  problemResponse(
    {
      type: PROBLEM_TYPES.notFound,
      status: 404,
      title: 'Not found',
      detail: `No route ${c.req.path}.`,
    },
    c.get('requestId'),
  ),
)

app.onError((error, c) => {
  const id = c.get('requestId')
  if (error instanceof ApiError) return problemResponse(error.problem, id, error.headers)
  if (error instanceof HTTPException && error.status < 500) {
    // Hono's own 4xx (malformed JSON body, a wrong content type) join the validation problem type.
    const validation = error.status === 400
    return problemResponse(
      {
        type: validation ? PROBLEM_TYPES.validation : 'about:blank',
        status: error.status,
        title: validation ? 'Invalid request' : error.message || 'Request failed',
        detail: error.message,
        ...(validation ? { errors: [{ field: '(body)', message: error.message }] } : {}),
      },
      id,
    )
  }
  console.error(
    JSON.stringify({
      level: 'error',
      requestId: id,
      path: c.req.path,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      stack: error instanceof Error ? error.stack : undefined,
    }),
  )
  return problemResponse(
    { type: PROBLEM_TYPES.internal, status: 500, title: 'Internal server error' },
    id,
  )
})
