// GET /v1/models: every served model (the default first) with its classes, defaults, limits, what a
// distilled model supports and what an image costs, from the bundled manifests (models/catalog.ts).
import { createRoute } from '@hono/zod-openapi'
import { modelListSchema } from '../../../shared/generation-api.ts'
import { createApiApp, problemResponseDoc } from '../http/openapi-app.ts'
import { servedCatalog } from '../models/catalog.ts'

const listModels = createRoute({
  method: 'get',
  path: '/v1/models',
  operationId: 'listModels',
  summary: 'List models',
  description:
    'Every model a request may name in `model`, the default (`default: true`, what a request without ' +
    '`model` runs on) first. A distilled few-step model lists in `supports` the only steps, heavy ' +
    'placements and guidance it accepts; `cost.macsPerImage` is one image at the model’s defaults.',
  // Public: no API key.
  security: [],
  responses: {
    200: {
      description: 'The served models, the default first',
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
  return c.json({ data: [...servedCatalog().models] }, 200)
})
