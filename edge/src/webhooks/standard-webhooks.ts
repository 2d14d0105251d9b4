// Webhook signing per the Standard Webhooks specification: the signed content is
// `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256 with the base64 secret after `whsec_`, sent as
// `webhook-signature: v1,<base64>`.
import { hmacSha256 } from '../../../shared/crypto.ts'

export interface SignedWebhook {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

/**
 * The three headers that sign one webhook delivery.
 *
 * @example
 * const headers = await signWebhook('whsec_…', 'msg_123', new Date(), JSON.stringify(payload))
 * await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body })
 */
export async function signWebhook(
  secret: string,
  messageId: string,
  sentAt: Date,
  body: string,
): Promise<SignedWebhook> {
  const timestamp = String(Math.floor(sentAt.getTime() / 1000))
  const keyBytes = Uint8Array.from(atob(secret.replace(/^whsec_/, '')), (char) =>
    char.charCodeAt(0),
  )
  const mac = await hmacSha256(keyBytes, `${messageId}.${timestamp}.${body}`)
  const signature = btoa(String.fromCharCode(...new Uint8Array(mac)))
  return {
    'webhook-id': messageId,
    'webhook-timestamp': timestamp,
    'webhook-signature': `v1,${signature}`,
  }
}
