// Cosine noise schedule (Nichol & Dhariwal 2021, eq. 17) in continuous time t in [0, 1], and the timestep
// grid the sampler walks. Must match gpu-service/training exactly: same offset, same clamp.

/** The schedule constants, as written to manifest.schedule by the export. */
export interface CosineSchedule {
  /** s in f(t) = cos(((t + s) / (1 + s)) * pi / 2)^2; 0.008 in the paper. */
  cosineOffset: number
  /** Lower clamp of alphaBar so that t = 1 keeps a little signal and 1 / alphaBar stays finite. */
  alphaBarMin: number
}

/** One sampler step: from time t down to tNext. */
export interface TimestepPair {
  t: number
  tNext: number
}

function cosineF(t: number, cosineOffset: number): number {
  return Math.cos(((t + cosineOffset) / (1 + cosineOffset)) * (Math.PI / 2)) ** 2
}

/**
 * alphaBar(t) = clamp(f(t) / f(0), alphaBarMin, 1), the signal fraction of x_t = alpha x0 + sigma eps.
 *
 * @example
 * alphaBar(0, { cosineOffset: 0.008, alphaBarMin: 1e-5 }) // 1
 */
export function alphaBar(t: number, schedule: CosineSchedule): number {
  const ratio = cosineF(t, schedule.cosineOffset) / cosineF(0, schedule.cosineOffset)
  return Math.min(1, Math.max(schedule.alphaBarMin, ratio))
}

/**
 * alpha(t) = sqrt(alphaBar), sigma(t) = sqrt(1 - alphaBar): x_t = alpha * x0 + sigma * eps.
 *
 * @example
 * const { alpha, sigma } = alphaSigma(0.5, manifest.schedule)
 */
export function alphaSigma(t: number, schedule: CosineSchedule): { alpha: number; sigma: number } {
  const bar = alphaBar(t, schedule)
  return { alpha: Math.sqrt(bar), sigma: Math.sqrt(1 - bar) }
}

/**
 * The N steps of a sampler run as (t_i, t_{i+1}) with t_i = 1 - i / N; the last tNext is exactly 0.
 *
 * @example
 * timestepPairs(2) // [{ t: 1, tNext: 0.5 }, { t: 0.5, tNext: 0 }]
 */
export function timestepPairs(steps: number): TimestepPair[] {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps must be a positive integer, got ${steps}`)
  }
  const times = Array.from({ length: steps + 1 }, (_, i) => 1 - i / steps)
  return times.slice(0, steps).map((t, i) => ({ t, tNext: times[i + 1] as number }))
}
