// The dual-rate sampler: the heavy context encoder refreshes features on the steps the heavy schedule
// names, the light denoiser predicts x0 on every step from (x_t, t, label, features), and an ancestral
// step moves x_t to x_tNext. Knows nothing of ONNX or HTTP: models and progress reporting come in.
import type { Manifest } from '../../../shared/model-manifest.ts'
import { type SamplingOptions, samplingOptionsSchema } from '../../../shared/sampling-options.ts'
import { ancestralStep, posteriorCoefficients } from './ancestral-step.ts'
import { heavyStepMask } from './heavy-schedule.ts'
import { imageNoiseStreams } from './rng.ts'
import { alphaBar, timestepPairs } from './schedule.ts'

/** Heavy encoder feeds for `rows` image rows: x_s is `rows * pixels` long, s and label `rows`. */
export interface HeavyFeeds {
  xS: Float32Array
  s: Float32Array
  label: BigInt64Array
}

/** Light denoiser feeds; `features` is whatever the last heavy call returned. */
export interface LightFeeds<Features> {
  xT: Float32Array
  t: Float32Array
  label: BigInt64Array
  features: Features
}

/**
 * The model pair as the sampler sees it. The sampler reuses its feed buffers between calls, so a model
 * must not keep them; the x0 it returns is read before the next call.
 */
export interface DualRateModels<Features> {
  heavy(feeds: HeavyFeeds): Promise<Features>
  /** Returns x0 predictions, `rows * pixels` long. */
  light(feeds: LightFeeds<Features>): Promise<Float32Array>
}

export interface StepEvent {
  /** 0-based step index. */
  step: number
  totalSteps: number
  /** Time at the start of the step. */
  t: number
  /** Whether the heavy encoder ran on this step. */
  heavy: boolean
  /** The guided, clipped x0 estimate, `count * pixels`; overwritten by the next step, copy to keep it. */
  x0: Float32Array
}

export interface SampleResult {
  /** Final images, `count * pixels` values in the clip range ([-1, 1]), image n at n * pixels. */
  images: Float32Array
  count: number
  pixels: number
  heavyCalls: number
  lightCalls: number
  /** Multiply-accumulates of all model calls: macsPerCall times rows, summed. */
  macs: number
  wallMs: number
}

/**
 * Draws `options.count` images of one class.
 *
 * @example
 * const result = await sample(models, manifest, {
 *   classIndex: 7, count: 4, steps: 50, heavySchedule: { every: 4 }, guidance: 3, seed: 1,
 * }, ({ step, totalSteps }) => console.log(`${step + 1}/${totalSteps}`))
 */
export async function sample<Features>(
  models: DualRateModels<Features>,
  manifest: Manifest,
  options: SamplingOptions,
  onStep?: (event: StepEvent) => void,
): Promise<SampleResult> {
  const started = performance.now()
  const { classIndex, count, steps, heavySchedule, guidance, seed } =
    samplingOptionsSchema.parse(options)
  const { channels, height, width } = manifest.image
  const pixels = channels * height * width
  const imageValues = count * pixels
  // Classifier-free guidance: conditional rows then unconditional rows, one batched call; w == 1 needs
  // only the conditional half.
  const guided = guidance !== 1
  const rows = guided ? 2 * count : count

  const pairs = timestepPairs(steps)
  const heavyAt = heavyStepMask(heavySchedule, steps)
  const streams = imageNoiseStreams(seed, count)
  const imageSlices = (buffer: Float32Array) =>
    streams.map((_, n) => buffer.subarray(n * pixels, (n + 1) * pixels))

  // Every buffer the loop touches, allocated once.
  const x = new Float32Array(imageValues)
  const noise = new Float32Array(imageValues)
  const x0 = new Float32Array(imageValues)
  const modelX = new Float32Array(rows * pixels)
  const modelTime = new Float32Array(rows)
  const label = new BigInt64Array(rows).fill(BigInt(classIndex), 0, count)
  if (guided) label.fill(BigInt(manifest.nullClass), count)
  const xSlices = imageSlices(x)
  const noiseSlices = imageSlices(noise)

  const fillFromStreams = (slices: Float32Array[]) => {
    for (let n = 0; n < count; n++) streams[n]?.fill(slices[n] as Float32Array)
  }
  // x_T: each image's first draws.
  fillFromStreams(xSlices)

  let features: Features | undefined
  let heavyCalls = 0
  let lightCalls = 0
  let macs = 0
  for (let step = 0; step < steps; step++) {
    const { t, tNext } = pairs[step] as { t: number; tNext: number }
    const heavy = heavyAt[step] as boolean
    modelX.set(x, 0)
    if (guided) modelX.set(x, imageValues)
    modelTime.fill(t)

    if (heavy) {
      features = await models.heavy({ xS: modelX, s: modelTime, label })
      heavyCalls++
      macs += rows * manifest.models.heavy.macsPerCall
    }
    if (features === undefined) throw new Error('heavy schedule must include step 0')
    // Stage 1: predict x0.
    const x0Rows = await models.light({ xT: modelX, t: modelTime, label, features })
    lightCalls++
    macs += rows * manifest.models.light.macsPerCall
    if (x0Rows.length !== rows * pixels) {
      throw new Error(`light model returned ${x0Rows.length} values, expected ${rows * pixels}`)
    }

    const last = step === steps - 1
    if (!last) fillFromStreams(noiseSlices)
    ancestralStep(
      {
        x,
        x0Cond: x0Rows.subarray(0, imageValues),
        x0Uncond: guided ? x0Rows.subarray(imageValues) : null,
        x0,
        noise: last ? null : noise,
      },
      {
        guidance,
        clipX0: manifest.schedule.clipX0,
        coefficients: posteriorCoefficients(
          alphaBar(t, manifest.schedule),
          alphaBar(tNext, manifest.schedule),
        ),
      },
    )
    onStep?.({ step, totalSteps: steps, t, heavy, x0 })
  }

  return {
    images: x,
    count,
    pixels,
    heavyCalls,
    lightCalls,
    macs,
    wallMs: performance.now() - started,
  }
}
