// Every sub-app of the API is an OpenAPIHono with the one validation hook, so each route answers invalid
// input with the same 400 problem listing each invalid field.
import { OpenAPIHono } from '@hono/zod-openapi'
import { PROBLEM_CONTENT_TYPE, problemSchema } from '../../../shared/problem.ts'
import { fieldErrors, invalidRequest } from '../problems/api-error.ts'
import type { AppEnv } from './app-env.ts'

/** A sub-app whose request validation failures become `invalidRequest` problems. */
export function createApiApp() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw invalidRequest(fieldErrors(result.error))
    },
  })
}

const problemDocSchema = problemSchema.meta({ id: 'Problem' })

/** An OpenAPI response entry for an error status. */
export function problemResponseDoc(description: string) {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: problemDocSchema } } }
}
