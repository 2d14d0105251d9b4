// The dual-rate sampler: the heavy context encoder refreshes features on the steps the heavy schedule
// names, the light denoiser predicts x0 on every step from (x_t, t, label, features), and an ancestral
// step moves x_t to x_tNext. Knows nothing of ONNX or HTTP: models and progress reporting come in.
// One request alone; the service's step scheduler drives the same SamplerRun and StepBatch for many.
import type { Manifest } from '../../../shared/model-manifest.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import {
  type DualRateModels,
  type SampleResult,
  SamplerRun,
  type StepEvent,
} from './sampler-run.ts'
import { StepBatch } from './step-batch.ts'

export type {
  DualRateModels,
  FeatureRows,
  HeavyFeeds,
  LightFeeds,
  SampleResult,
  StepEvent,
} from './sampler-run.ts'

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
  const run = new SamplerRun<Features>(manifest, options)
  const batch = new StepBatch(models, manifest, run.rows)
  while (!run.done) {
    if (run.heavyDue) await batch.heavy([run])
    const [event] = await batch.light([run])
    if (event) onStep?.(event)
  }
  const { count, pixels, heavyCalls, lightCalls, macs } = run
  return {
    images: run.images,
    count,
    pixels,
    heavyCalls,
    lightCalls,
    macs,
    wallMs: performance.now() - started,
  }
}
