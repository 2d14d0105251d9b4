// Edge -> gpu-service request authentication: HMAC-SHA256 over method, path, timestamp and body hash with
// a shared secret. Web Crypto only, so the same code runs in workerd and Node.
import { fromHex, hmacSha256, toHex } from './crypto.ts'

export const SIGNATURE_HEADER = 'x-dualrate-signature'
export const TIMESTAMP_HEADER = 'x-dualrate-timestamp'
/** Signatures older or newer than this are refused, so a captured request cannot be replayed later. */
export const MAX_SIGNATURE_AGE_SECONDS = 300
/** Both sides refuse shorter shared secrets (a generated one is 64 hex digits). */
export const MIN_SECRET_LENGTH = 32

const encoder = new TextEncoder()

async function verifyKey(secret: string) {
  return crypto.subtle.importKey(
    'raw',
    encoder.encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['verify'],
  )
}

/** `METHOD\npath\ntimestamp\nsha256(body) hex`: what the signature covers. */
export async function canonicalRequest(
  method: string,
  path: string,
  timestamp: string,
  body: Uint8Array | string,
) {
  const bytes = typeof body === 'string' ? encoder.encode(body) : body
  const bodyHash = toHex(await crypto.subtle.digest('SHA-256', bytes))
  return `${method.toUpperCase()}\n${path}\n${timestamp}\n${bodyHash}`
}

/**
 * Headers that sign one request.
 *
 * @example
 * const headers = await signRequest(secret, 'POST', '/v1/runs', JSON.stringify(body))
 * await fetch(`${backend}/v1/runs`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body })
 */
export async function signRequest(
  secret: string,
  method: string,
  path: string,
  body: Uint8Array | string,
  now = Date.now(),
): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(now / 1000))
  const message = await canonicalRequest(method, path, timestamp, body)
  const signature = toHex(await hmacSha256(secret, message))
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `v1=${signature}` }
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string }

/**
 * Verifies a signed request; constant-time through crypto.subtle.verify.
 *
 * @example
 * const check = await verifyRequest(secret, 'POST', '/v1/runs', body, headers.get)
 * if (!check.ok) return unauthorized(check.reason)
 */
export async function verifyRequest(
  secret: string,
  method: string,
  path: string,
  body: Uint8Array | string,
  header: (name: string) => string | null | undefined,
  now = Date.now(),
): Promise<SignatureCheck> {
  const timestamp = header(TIMESTAMP_HEADER)
  const signature = header(SIGNATURE_HEADER)
  if (!timestamp || !signature) return { ok: false, reason: 'missing signature headers' }
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed timestamp' }
  if (Math.abs(now / 1000 - Number(timestamp)) > MAX_SIGNATURE_AGE_SECONDS) {
    return { ok: false, reason: 'stale timestamp' }
  }
  const match = /^v1=([0-9a-f]{64})$/.exec(signature)
  if (!match?.[1]) return { ok: false, reason: 'malformed signature' }
  const expected = fromHex(match[1])
  const message = await canonicalRequest(method, path, timestamp, body)
  const valid = await crypto.subtle.verify(
    'HMAC',
    await verifyKey(secret),
    expected,
    encoder.encode(message),
  )
  return valid ? { ok: true } : { ok: false, reason: 'signature mismatch' }
}
