// GET /v1/models: the served model, its classes, defaults and limits, from the bundled manifest.
import { createRoute } from '@hono/zod-openapi'
import { modelListSchema } from '../../../shared/generation-api.ts'
import { createApiApp } from '../http/openapi-app.ts'
import { model } from '../models/manifest.ts'

const listModels = createRoute({
  method: 'get',
  path: '/v1/models',
  summary: 'List models',
  responses: {
    200: {
      description: 'The served model',
      content: { 'application/json': { schema: modelListSchema } },
    },
  },
})

export const models = createApiApp()

models.openapi(listModels, (c) => {
  c.header('cache-control', 'public, max-age=300')
  return c.json({ data: [model] }, 200)
})
