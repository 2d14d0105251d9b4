// How much a step's error grows by the end of sampling. The reuse-cost table (reuse-cost.ts) scores a stale
// step by how far it moves x_tNext off the K = 1 reference; what the image loses is how far that shift
// carries through the remaining steps. Along each reference trajectory the sampler is replayed once per
// step s with only step s given stale features, everything else (state before s, features after it, the
// ancestral noise) as in the reference; the gain of step s is the RMS change of the final image over the
// RMS shift injected into x_tNext. Replays reuse the reference's later features rather than re-encoding
// the shifted states: a first-order view (the heavy encoder's answer to a small shift is ignored) that
// costs light calls only.
import type { Manifest } from '../../../shared/model-manifest.ts'
import { type DualRateModels, sample } from '../sampler/sample.ts'
import { referenceJobs } from './reuse-cost.ts'

export interface PropagationGainSettings {
  steps: number
  /** Trajectories in all, spread evenly over the classes. */
  trajectories: number
  /** Images per sampler call. */
  batch: number
  guidance: number
  seed: number
  /** Age of the stale features injected at step s (capped at s): the perturbation's direction. */
  probeAge: number
}

export interface PropagationGain {
  steps: number
  trajectories: number
  probeAge: number
  /**
   * gain[s] = sqrt(sum ||final change||^2 / sum ||x_tNext shift at s||^2) over trajectories; step 0 has
   * no older features (null) and the last step's x_tNext is the image (1).
   */
  gain: (number | null)[]
  /** Spread of the per-trajectory ratio ||final change|| / ||shift||. */
  std: (number | null)[]
}

/**
 * Measures the propagation gain of every step of a model pair.
 *
 * @example
 * const { gain } = await measurePropagationGain(pair.models, pair.manifest,
 *   { steps: 50, trajectories: 64, batch: 32, guidance: 1, seed: 0, probeAge: 4 })
 * gain[10] // how many times a shift of x_tNext at step 10 is larger in the final image
 */
export async function measurePropagationGain<Features>(
  models: DualRateModels<Features>,
  manifest: Manifest,
  settings: PropagationGainSettings,
  onBatch?: (done: number, total: number) => void,
): Promise<PropagationGain> {
  const { steps, trajectories, probeAge } = settings
  if (!Number.isInteger(probeAge) || probeAge < 1) {
    throw new RangeError(`probeAge must be a positive integer, got ${probeAge}`)
  }
  const { channels, height, width } = manifest.image
  const pixels = channels * height * width
  const shiftSq = new Float64Array(steps)
  const finalSq = new Float64Array(steps)
  const ratios: number[][] = Array.from({ length: steps }, () => [])
  let done = 0
  for (const options of referenceJobs(settings, manifest.classes.length)) {
    const imageValues = options.count * pixels
    // The reference: fresh features on every step; keep them and the state each light step starts from.
    const features: Features[] = []
    const states: Float32Array[] = []
    const reference = await sample(
      {
        async heavy(feeds) {
          const computed = await models.heavy(feeds)
          features.push(computed)
          return computed
        },
        async light(feeds) {
          states.push(feeds.xT.slice(0, imageValues))
          return models.light(feeds)
        },
      },
      manifest,
      options,
    )
    for (let step = 1; step < steps - 1; step++) {
      const age = Math.min(probeAge, step)
      let heavyStep = 0
      let lightStep = 0
      let shift: Float32Array | null = null
      const replay = await sample(
        {
          async heavy() {
            const index = heavyStep === step ? step - age : heavyStep
            heavyStep++
            return features[index] as Features
          },
          async light(feeds) {
            if (lightStep === step + 1)
              shift = difference(feeds.xT, states[step + 1] as Float32Array)
            lightStep++
            return models.light(feeds)
          },
        },
        manifest,
        options,
      )
      if (!shift) throw new Error(`replay of step ${step} never reached step ${step + 1}`)
      const change = difference(replay.images, reference.images)
      for (let n = 0; n < options.count; n++) {
        const injected = sumSquares(shift, n * pixels, pixels)
        const carried = sumSquares(change, n * pixels, pixels)
        shiftSq[step] = (shiftSq[step] as number) + injected
        finalSq[step] = (finalSq[step] as number) + carried
        if (injected > 0) ratios[step]?.push(Math.sqrt(carried / injected))
      }
    }
    done += options.count
    onBatch?.(done, trajectories)
  }
  const gain = Array.from({ length: steps }, (_, step): number | null => {
    if (step === 0) return null
    if (step === steps - 1) return 1
    const injected = shiftSq[step] as number
    return injected > 0 ? Math.sqrt((finalSq[step] as number) / injected) : null
  })
  const std = ratios.map((values, step) => {
    if (step === steps - 1) return 0
    if (values.length === 0) return null
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length
    return Math.sqrt(values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length)
  })
  return { steps, trajectories, probeAge, gain, std }
}

/** a - b over b's length (a may hold more rows, as the guided call's unconditional half). */
function difference(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(b.length)
  for (let i = 0; i < b.length; i++) out[i] = (a[i] as number) - (b[i] as number)
  return out
}

function sumSquares(values: Float32Array, start: number, length: number): number {
  let total = 0
  for (let i = start; i < start + length; i++) total += (values[i] as number) ** 2
  return total
}
