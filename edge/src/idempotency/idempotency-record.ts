// One Durable Object per (API key, Idempotency-Key): remembers the body fingerprint and what the first
// request resolved to (notably a drawn seed), so a retry gets the same job and another body gets 422.
// draft-ietf-httpapi-idempotency-key-header: the key is scoped to its client and expires.
import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env.ts'

/** How long a key is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000

export type IdempotencyClaim<Value> =
  | { outcome: 'first'; value: Value }
  | { outcome: 'replay'; value: Value }
  | { outcome: 'mismatch' }

interface StoredClaim {
  fingerprint: string
  value: unknown
}

export class IdempotencyRecord extends DurableObject<Env> {
  /**
   * Stores `value` under this key if it is new; otherwise returns the stored value when the fingerprint
   * matches, and `mismatch` when the same key came with another body.
   */
  claim<Value>(fingerprint: string, value: Value): IdempotencyClaim<Value> {
    const stored = this.ctx.storage.kv.get<StoredClaim>('claim')
    if (stored) {
      return stored.fingerprint === fingerprint
        ? { outcome: 'replay', value: stored.value as Value }
        : { outcome: 'mismatch' }
    }
    this.ctx.storage.kv.put('claim', { fingerprint, value } satisfies StoredClaim)
    this.ctx.storage.setAlarm(Date.now() + IDEMPOTENCY_TTL_MS)
    return { outcome: 'first', value }
  }

  override async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll()
  }
}
