// Result keys: HMAC-SHA256 over the model id and the canonical request (seed included, preview cadence
// excluded because it does not change a pixel), so the same options on two models are two results.
// Equal requests get equal keys and share one job and one result; the secret makes keys unguessable
// even to someone who knows a request.

import { hmacSha256, sha256Hex, toHex } from '../../../shared/crypto.ts'
import type { RunRequest } from '../../../shared/run-protocol.ts'

/** JSON with object keys sorted at every level, so equal values have one text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * What determines the pixels of a result: the model id, then the options (not the preview cadence, not
 * the run's id; a `model` field in the request is the model id already written first).
 */
export function resultIdentity(modelId: string, request: RunRequest): string {
  const { previewEvery: _previewEvery, runId: _runId, model: _model, ...pixels } = request
  return `${modelId}\n${canonicalJson(pixels)}`
}

/**
 * The result key of a request: 64 hex digits.
 *
 * @example
 * const key = await resultKey(secret, model.id, runRequest) // '3f9c…'
 */
export async function resultKey(secret: string, modelId: string, request: RunRequest) {
  return toHex(await hmacSha256(secret, resultIdentity(modelId, request)))
}

/** SHA-256 hex of the canonical form of a value (idempotency fingerprints). */
export function fingerprint(value: unknown): Promise<string> {
  return sha256Hex(canonicalJson(value))
}
