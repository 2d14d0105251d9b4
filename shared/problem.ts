// The one error envelope of the API: RFC 9457 "Problem Details for HTTP APIs" (application/problem+json).
import { z } from 'zod'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** RFC 9457 section 3: the standard members, plus extension members (section 3.2) passed through. */
export const problemSchema = z.looseObject({
  /** A URI reference naming the problem type; "about:blank" means "just the HTTP status" (section 4.2.1). */
  type: z.string().min(1).default('about:blank'),
  status: z.number().int().min(100).max(599),
  title: z.string().min(1),
  detail: z.string().optional(),
  instance: z.string().optional(),
})

export type Problem = z.infer<typeof problemSchema>

export interface ProblemInit {
  status: number
  title: string
  type?: string
  detail?: string
  instance?: string
  /** Extension members, e.g. `errors` for validation failures or `requestId`. */
  extensions?: Record<string, unknown>
}

/**
 * Builds a validated problem object; throws if the standard members are malformed.
 *
 * @example
 * const body = problem({ status: 400, title: 'Invalid request', detail: 'guidance: Too big' })
 * return new Response(JSON.stringify(body), {
 *   status: body.status,
 *   headers: { 'content-type': PROBLEM_CONTENT_TYPE },
 * })
 */
export function problem(init: ProblemInit): Problem {
  const { extensions, ...members } = init
  // Standard members win over extensions of the same name (RFC 9457 section 3.2).
  return problemSchema.parse({ ...extensions, ...members })
}

/**
 * Problem type URIs of the public API (RFC 9457 section 4: relative references resolve against the API).
 * Here, beside the envelope, so the HTTP layer, the jobs behind it and clients name them the same way.
 */
export const PROBLEM_TYPES = {
  validation: '/problems/validation',
  unauthorized: '/problems/unauthorized',
  rateLimited: '/problems/rate-limited',
  concurrencyQuota: '/problems/concurrency-quota',
  idempotencyMismatch: '/problems/idempotency-mismatch',
  notFound: '/problems/not-found',
  tooLarge: '/problems/payload-too-large',
  backendUnavailable: '/problems/backend-unavailable',
  timeout: '/problems/timeout',
  tooManyStreams: '/problems/too-many-streams',
  generationBusy: '/problems/generation-busy',
  webhookLimit: '/problems/webhook-limit',
  internal: '/problems/internal',
} as const
