// GET /v1/models: the served model, its classes, defaults and limits, from the bundled manifest.
import { createRoute } from '@hono/zod-openapi'
import { modelListSchema } from '../../../shared/generation-api.ts'
import { createApiApp, problemResponseDoc } from '../http/openapi-app.ts'
import { model } from '../models/manifest.ts'

const listModels = createRoute({
  method: 'get',
  path: '/v1/models',
  operationId: 'listModels',
  summary: 'List models',
  // Public: no API key.
  security: [],
  responses: {
    200: {
      description: 'The served model',
      content: { 'application/json': { schema: modelListSchema } },
    },
    '4XX': problemResponseDoc(
      'A client error, as problem+json like every error of this API (this route reads no input)',
    ),
  },
})

export const models = createApiApp()

models.openapi(listModels, (c) => {
  c.header('cache-control', 'public, max-age=300')
  return c.json({ data: [model] }, 200)
})
