// The edge API: middleware shared by every route (request id, security headers, CORS), the routes, the
// OpenAPI document and reference page, and the one error handler that answers with problem+json.
import { OpenAPIHono } from '@hono/zod-openapi'
import { cors } from 'hono/cors'
import { HTTPException } from 'hono/http-exception'
import { requestId } from 'hono/request-id'
import { secureHeaders } from 'hono/secure-headers'
import { generationEventSchemas } from '../../shared/generation-api.ts'
import { PROBLEM_TYPES } from '../../shared/problem.ts'
import { readConfig } from './env.ts'
import type { AppEnv } from './http/app-env.ts'
import { ApiError, problemResponse } from './http/problem.ts'
import { model } from './models/manifest.ts'
import { renderReferencePage } from './openapi/reference-page.ts'
import { generations } from './routes/generations.ts'
import { models } from './routes/models.ts'
import { results } from './routes/results.ts'

export const OPENAPI_INFO = {
  title: 'Dual-Rate image API',
  version: '1.0.0',
  description:
    `Class-conditional image generation with model \`${model.id}\`: a heavy context encoder every K ` +
    'steps, a light denoiser every step. Jobs stream progress over SSE; results are immutable URLs.',
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
// The SSE stream's event payloads, by event name (`QueuedEvent`, `StepEvent`, ...).
for (const [name, schema] of Object.entries(generationEventSchemas)) {
  app.openAPIRegistry.register(`${name[0]?.toUpperCase()}${name.slice(1)}Event`, schema)
}
app.doc31('/openapi.json', { openapi: '3.1.0', info: OPENAPI_INFO })
app.get('/docs', (c) => {
  c.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
  return c.html(
    renderReferencePage(app.getOpenAPI31Document({ openapi: '3.1.0', info: OPENAPI_INFO })),
  )
})

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
