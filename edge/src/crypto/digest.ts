// SHA-256 and HMAC-SHA256 with Web Crypto, as hex or bytes: the hashing behind key storage, result
// keys, idempotency fingerprints and webhook signatures.
const encoder = new TextEncoder()

export function toHex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (byte) => byte.toString(16).padStart(2, '0')).join('')
}

/** SHA-256 of a UTF-8 string, hex. */
export async function sha256Hex(text: string): Promise<string> {
  return toHex(await crypto.subtle.digest('SHA-256', encoder.encode(text)))
}

/**
 * HMAC-SHA256 of a UTF-8 message under a key given as text (UTF-8) or raw bytes.
 *
 * @example
 * toHex(await hmacSha256('secret', 'message'))
 */
export async function hmacSha256(key: string | Uint8Array, message: string): Promise<ArrayBuffer> {
  const cryptoKey = await crypto.subtle.importKey(
    'raw',
    typeof key === 'string' ? encoder.encode(key) : key,
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  )
  return crypto.subtle.sign('HMAC', cryptoKey, encoder.encode(message))
}
