// Webhook delivery: one POST per attempt, and when to try again. The schedule follows the Standard
// Webhooks recommendation of exponential backoff over hours; a 2xx answer ends it, and so does a
// target the edge refuses to reach (webhook-target.ts).
import { signWebhook } from './standard-webhooks.ts'
import { type WebhookTargetPolicy, webhookTargetError } from './webhook-target.ts'

/** Delay before attempt n + 1 after attempt n failed; past the end, delivery gives up. */
export const RETRY_DELAYS_MS = [5_000, 30_000, 2 * 60_000, 10 * 60_000, 60 * 60_000] as const
/** A receiver must answer within this time. */
export const DELIVERY_TIMEOUT_MS = 10_000

export interface WebhookMessage {
  messageId: string
  url: string
  secret: string
  body: string
}

/** When to try again after `failedAttempts` failures, or null to give up. */
export function nextAttemptAt(failedAttempts: number, now: number): number | null {
  const delay = RETRY_DELAYS_MS[failedAttempts - 1]
  return delay === undefined ? null : now + delay
}

/**
 * The outcome of one attempt. `status` is the receiver's HTTP status when it answered; `reason` says
 * why an attempt failed, for logs (never the receiver's body, which may echo anything). `permanent`
 * failures will fail the same way on every retry: the outbox stops retrying them.
 */
export type DeliveryResult =
  | { delivered: true; status: number }
  | { delivered: false; permanent: boolean; status?: number; reason: string }

/**
 * One delivery attempt. The target is checked again first (a policy tightened since the URL was
 * accepted, or a row stored before the check existed, must not be sent), and redirects are not
 * followed: a 3xx would let the receiver point the worker anywhere the check refuses.
 *
 * @example
 * const result = await deliverWebhook(message, { allowHttp: false, allowPrivate: false })
 * if (!result.delivered && !result.permanent) schedule(nextAttemptAt(attempts, Date.now()))
 */
export async function deliverWebhook(
  message: WebhookMessage,
  policy: WebhookTargetPolicy,
  now = new Date(),
): Promise<DeliveryResult> {
  const targetError = webhookTargetError(message.url, policy)
  if (targetError) {
    return { delivered: false, permanent: true, reason: `refused target: ${targetError}` }
  }
  const headers = await signWebhook(message.secret, message.messageId, now, message.body)
  let response: Response
  try {
    response = await fetch(message.url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: message.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    })
  } catch (error) {
    const timedOut = error instanceof Error && error.name === 'TimeoutError'
    return { delivered: false, permanent: false, reason: timedOut ? 'timeout' : 'network error' }
  }
  // Unread: only the status decides, and nothing of the body is kept.
  await response.body?.cancel()
  const { status } = response
  if (status >= 200 && status < 300) return { delivered: true, status }
  const reason =
    status >= 300 && status < 400 ? `redirect ${status} not followed` : `status ${status}`
  return { delivered: false, permanent: false, status, reason }
}
