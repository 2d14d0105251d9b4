// An adaptive heavy schedule: each run decides during sampling, from its own x0 predictions, when its
// features have gone stale enough to refresh (in the spirit of TeaCache, Liu et al. 2024, which
// accumulates a cheap change signal between full computations and recomputes past a threshold).
//
// Signal: after each step, the change of the run's guided, clipped x0 estimate since the previous step,
// as an RMS per pixel, weighted by the DDPM posterior-mean weight of x0 at that step (Ho et al. 2020
// eq. 7) -- how far that change moves the trajectory. It accumulates from the last heavy call; once it
// reaches the tolerance, the next step runs the heavy encoder and the sum restarts. The features were
// computed from a state whose content has since moved that far. Costs nothing extra: x0 is computed anyway.
// The sum restarts on a heavy step and grows on the next, so heavy calls come at most every second step.
//
// Decisions read only this run's own values, so a request gives the same heavy steps and pixels alone
// or batched with others.

/**
 * One run's adaptive controller. Step 0 always runs the heavy encoder.
 *
 * @example
 * const schedule = new AdaptiveHeavySchedule(0.02)
 * // after each step: const heavyNext = schedule.observe(event.x0, coefficients.posteriorMeanCoefX0, event.heavy)
 */
export class AdaptiveHeavySchedule {
  readonly tolerance: number
  #previous: Float32Array | null = null
  #accumulated = 0

  constructor(tolerance: number) {
    if (!(tolerance > 0) || !Number.isFinite(tolerance)) {
      throw new RangeError(`adaptive tolerance must be a positive number, got ${tolerance}`)
    }
    this.tolerance = tolerance
  }

  /**
   * Takes the step's x0 estimate (all of the run's images), the weight the step gave x0, and whether the
   * step ran the heavy encoder; returns whether the next step must.
   */
  observe(x0: Float32Array, posteriorMeanCoefX0: number, heavy: boolean): boolean {
    if (heavy) this.#accumulated = 0
    else if (this.#previous) this.#accumulated += posteriorMeanCoefX0 * rms(x0, this.#previous)
    if (this.#previous?.length !== x0.length) this.#previous = new Float32Array(x0.length)
    this.#previous.set(x0)
    return this.#accumulated >= this.tolerance
  }

  /** The change accumulated since the last heavy call (for the progress report). */
  get accumulated(): number {
    return this.#accumulated
  }
}

function rms(a: Float32Array, b: Float32Array): number {
  let sum = 0
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (b[i] as number)
    sum += d * d
  }
  return Math.sqrt(sum / Math.max(1, a.length))
}
