// SHA-256 and HMAC-SHA256 with Web Crypto, as hex or bytes: the one home of the hashing behind key
// storage, result keys, idempotency fingerprints, webhook signatures and the edge <-> gpu-service request
// signatures. Web Crypto only, so the same code runs in workerd, Node and the browser.
const encoder = new TextEncoder()

/** Lowercase hex of some bytes. */
export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)
  return Array.from(view, (byte) => byte.toString(16).padStart(2, '0')).join('')
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

/** The bytes of a hex string (two digits a byte); throws on anything else. */
export function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new Error('expected an even number of hex digits')
  return Uint8Array.from(hex.match(/../g) ?? [], (byte) => Number.parseInt(byte, 16))
}
