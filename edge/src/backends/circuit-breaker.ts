// A circuit breaker for one backend (Nygard, "Release It!", ch. 5): closed, it lets every attempt
// through and counts consecutive failures; at `failureThreshold` it opens and lets nothing through;
// after `coolDownMs` it is half-open and lets exactly one attempt through, the probe, whose success
// closes it and whose failure opens it again for another cool-down. Pure state: the clock is passed in.

export interface BreakerOptions {
  /** Consecutive failures that open a closed breaker. */
  failureThreshold: number
  /** How long an open breaker refuses before it lets one probe through. */
  coolDownMs: number
}

/**
 * Three failures in a row: one failure is often the run's or the network's, not the backend's, and a
 * dead backend refuses connections in a millisecond, so three cost little. Ten seconds of rest: a
 * restarted gpu-service loads its models in a few seconds, and a probe every 10 s costs a dead one
 * a fast refused connection now and then.
 */
export const DEFAULT_BREAKER: Readonly<BreakerOptions> = Object.freeze({
  failureThreshold: 3,
  coolDownMs: 10_000,
})

export type BreakerState = 'closed' | 'open' | 'half-open'

/**
 * @example
 * const breaker = new CircuitBreaker()
 * if (breaker.allows(now)) { breaker.begin(now); ok ? breaker.succeeded() : breaker.failed(now) }
 */
export class CircuitBreaker {
  readonly #options: BreakerOptions
  #open = false
  #openedAt = 0
  #failures = 0
  /** A half-open breaker's one attempt is under way. */
  #probing = false

  constructor(options: BreakerOptions = DEFAULT_BREAKER) {
    if (!Number.isInteger(options.failureThreshold) || options.failureThreshold < 1) {
      throw new RangeError(
        `failureThreshold must be a positive integer, got ${options.failureThreshold}`,
      )
    }
    if (!(options.coolDownMs >= 0)) {
      throw new RangeError(`coolDownMs must be 0 or more, got ${options.coolDownMs}`)
    }
    this.#options = { ...options }
  }

  /** Open turns half-open by itself once the cool-down has passed. */
  state(now: number): BreakerState {
    if (!this.#open) return 'closed'
    return now - this.#openedAt >= this.#options.coolDownMs ? 'half-open' : 'open'
  }

  /** When it last opened (0 if never): the one open longest is the first worth trying again. */
  get openedAt(): number {
    return this.#openedAt
  }

  /** Consecutive failures since the last success. */
  get failures(): number {
    return this.#failures
  }

  /** Whether an attempt may start now: always when closed, once per cool-down when half-open. */
  allows(now: number): boolean {
    const state = this.state(now)
    return state === 'closed' || (state === 'half-open' && !this.#probing)
  }

  /**
   * An attempt starts; when half-open it is the probe, and no other gets through until it ends. Returns
   * whether it is the probe (only the probe may be `released`).
   */
  begin(now: number): boolean {
    if (this.state(now) !== 'half-open' || this.#probing) return false
    this.#probing = true
    return true
  }

  /** The backend did its work: closed, and the count starts again. */
  succeeded(): void {
    this.#open = false
    this.#probing = false
    this.#failures = 0
  }

  /**
   * The backend failed: a closed breaker opens at the threshold, a half-open one (its probe, or any
   * attempt that ends after the cool-down) opens again; an open one keeps its cool-down.
   */
  failed(now: number): void {
    this.#failures += 1
    const opens = this.#open
      ? this.state(now) === 'half-open'
      : this.#failures >= this.#options.failureThreshold
    if (opens) {
      this.#open = true
      this.#openedAt = now
    }
    this.#probing = false
  }

  /** A probe ended with no verdict on the backend (cancelled, or a failure of the request's own). */
  released(): void {
    this.#probing = false
  }
}
