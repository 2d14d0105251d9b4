// The Hono environment of the app: bindings, and what middleware hands to the routes.
import type { ApiKeyIdentity } from '../auth/api-key.ts'
import type { Env } from '../env.ts'

export type AppEnv = {
  Bindings: Env
  Variables: {
    requestId: string
    apiKey: ApiKeyIdentity
  }
}
