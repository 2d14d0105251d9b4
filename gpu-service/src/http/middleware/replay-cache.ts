// The signatures the service has accepted and could still accept, so that each is accepted once. A
// signature is valid while its timestamp is within MAX_SIGNATURE_AGE_SECONDS of the clock, on either
// side, so an entry lives until its timestamp plus the window has passed; then the signature is refused
// as stale anyway and the entry goes. Entries sit in buckets by that expiry second, so expired ones are
// dropped a bucket at a time. Bounded: when it is full of live entries it says so, and the caller refuses
// the request, rather than forgetting a live signature (which would let it be replayed).
import { MAX_SIGNATURE_AGE_SECONDS } from '../../../../shared/request-signature.ts'

export type ReplayCheck = 'fresh' | 'replayed' | 'full'

/**
 * @example
 * const seen = new ReplayCache(100_000)
 * if (seen.check(signature, timestamp, Date.now()) === 'replayed') return unauthorized('replayed signature')
 */
export class ReplayCache {
  readonly maxEntries: number
  /** Expiry second -> signatures whose validity ends then. */
  readonly #buckets = new Map<number, Set<string>>()
  #size = 0
  #prunedAt = Number.NEGATIVE_INFINITY

  constructor(maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`)
    }
    this.maxEntries = maxEntries
  }

  /** Live entries. */
  get size(): number {
    return this.#size
  }

  /**
   * Records a verified signature with its timestamp (seconds): "fresh" the first time, "replayed" after,
   * "full" when there is no room (nothing is recorded then).
   */
  check(signature: string, timestampSeconds: number, nowMs: number): ReplayCheck {
    this.#prune(nowMs)
    const expiry = timestampSeconds + MAX_SIGNATURE_AGE_SECONDS
    const bucket = this.#buckets.get(expiry)
    if (bucket?.has(signature)) return 'replayed'
    if (this.#size >= this.maxEntries) return 'full'
    if (bucket) bucket.add(signature)
    else this.#buckets.set(expiry, new Set([signature]))
    this.#size++
    return 'fresh'
  }

  /** Seconds until the soonest entry expires (and a request may find room), at least 1. */
  secondsUntilRoom(nowMs: number): number {
    let soonest = Number.POSITIVE_INFINITY
    for (const expiry of this.#buckets.keys()) soonest = Math.min(soonest, expiry)
    return Number.isFinite(soonest) ? Math.max(1, Math.ceil(soonest - nowMs / 1000)) : 1
  }

  /** Drops the buckets whose second has passed: their signatures are stale now. */
  #prune(nowMs: number): void {
    const now = nowMs / 1000
    // At most one scan per second: a bucket expires a whole second at a time.
    if (Math.floor(now) === this.#prunedAt) return
    this.#prunedAt = Math.floor(now)
    for (const [expiry, signatures] of this.#buckets) {
      if (expiry < now) {
        this.#buckets.delete(expiry)
        this.#size -= signatures.size
      }
    }
  }
}
