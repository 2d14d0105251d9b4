// The message a job's webhook sends an owner when the job ends for it (Standard Webhooks: a stable
// `webhook-id` per message, a typed JSON body).
import type { JobState, OwnerOutcome } from '../jobs/job-state.ts'
import { imageUrls } from '../results/result-store.ts'
import type { WebhookMessageBody } from './outbox.ts'

/**
 * The message for `owner`, whose view of `state` ended with `outcome` (event `outcome.eventId`).
 *
 * @example
 * outbox.seal(owner, webhookMessage(state, owner, outcome), Date.now())
 */
export function webhookMessage(
  state: JobState,
  owner: string,
  outcome: OwnerOutcome,
): WebhookMessageBody {
  const data =
    outcome.status === 'succeeded'
      ? {
          images: imageUrls(state.origin, state.key, state.request.count),
          timings: outcome.timings,
        }
      : outcome.status === 'failed'
        ? { problem: outcome.error }
        : {}
  return {
    // Unique per owner and ending, the same across retries.
    messageId: `msg_${state.key.slice(0, 24)}_${outcome.eventId}_${owner.slice(0, 12)}`,
    body: JSON.stringify({
      type: `generation.${outcome.status}`,
      timestamp: new Date(outcome.finishedAt).toISOString(),
      data: { id: state.key, status: outcome.status, eventId: outcome.eventId, ...data },
    }),
  }
}
