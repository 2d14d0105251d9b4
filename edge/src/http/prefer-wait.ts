// `Prefer: wait=N` (RFC 7240 section 4.3): how long the client is willing to wait for the job to end.
import { MAX_PREFER_WAIT_SECONDS } from '../../../shared/generation-api.ts'

/**
 * Seconds to wait, capped at the API's maximum; null when the header asks for no wait.
 *
 * @example
 * parsePreferWait('respond-async, wait=10') // 10
 */
export function parsePreferWait(header: string | undefined): number | null {
  if (!header) return null
  for (const preference of header.split(',')) {
    const match = /^\s*wait\s*=\s*"?(\d+)"?\s*$/i.exec(preference)
    if (match?.[1]) return Math.min(Number(match[1]), MAX_PREFER_WAIT_SECONDS)
  }
  return null
}
