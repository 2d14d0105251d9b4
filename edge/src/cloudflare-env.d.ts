// Tells the Workers types (`env`, `exports` from "cloudflare:workers") what this worker binds and exports.
import type { Env as EdgeEnv } from './env.ts'

declare global {
  namespace Cloudflare {
    interface Env extends EdgeEnv {}
    interface GlobalProps {
      mainModule: typeof import('./index.ts')
      durableNamespaces: 'GenerationJob' | 'KeyQuota' | 'IdempotencyRecord'
    }
  }
}
