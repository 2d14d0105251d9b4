// Webhook delivery: one POST per attempt, and when to try again. The schedule follows the Standard
// Webhooks recommendation of exponential backoff over hours; a 2xx answer ends it.
import { signWebhook } from './standard-webhooks.ts'

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
 * One delivery attempt; true when the receiver answered 2xx.
 *
 * @example
 * if (!(await deliverWebhook(message))) schedule(nextAttemptAt(attempts, Date.now()))
 */
export async function deliverWebhook(message: WebhookMessage, now = new Date()): Promise<boolean> {
  const headers = await signWebhook(message.secret, message.messageId, now, message.body)
  try {
    const response = await fetch(message.url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: message.body,
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    })
    await response.body?.cancel()
    return response.ok
  } catch {
    return false
  }
}
