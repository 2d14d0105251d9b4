// The ceiling the throughput benchmark holds the service to: the sampler alone, in this process, with no
// HTTP, driving as many runs as the service could batch at a concurrency in lockstep (all at the same step,
// so every heavy call holds every run's rows), with the service's models folder and session settings.
// Besides images/s it reports the seconds inside ONNX Runtime per image, so the service and the ceiling
// each have an overhead ratio: wall time per image over runtime time per image.
import type { Tensor } from 'onnxruntime-node'
import type { RunRequest } from '../../../shared/run-protocol.ts'
import { modelRows } from '../../../shared/sampling-options.ts'
import type { ModelPair } from '../onnx/model-pair.ts'
import { SamplerRun } from '../sampler/sampler-run.ts'
import { StepBatch } from '../sampler/step-batch.ts'
import type { SchedulerLimits } from '../scheduler/step-scheduler.ts'

/** One ceiling measurement. */
export interface CeilingSample {
  images: number
  wallSeconds: number
  /** Seconds inside ONNX Runtime, both networks. */
  onnxSeconds: number
}

/**
 * Runs the service could step together at `concurrency` clients of `request`: one per client, at most
 * maxActiveRuns, and no more rows than one model call holds (maxBatchRows).
 *
 * @example
 * ceilingBatchRuns(16, { count: 1, guidance: 1 }, { maxBatchRows: 128, maxActiveRuns: 16 }) // 16
 */
export function ceilingBatchRuns(
  concurrency: number,
  request: Pick<RunRequest, 'count' | 'guidance'>,
  limits: Pick<SchedulerLimits, 'maxBatchRows' | 'maxActiveRuns'>,
): number {
  const fitting = Math.floor(limits.maxBatchRows / modelRows(request))
  return Math.max(1, Math.min(concurrency, limits.maxActiveRuns, fitting))
}

/**
 * Samples `runs` runs of `request` (seeds and classes as the service benchmark sends them), `batchRuns`
 * at a time in lockstep through one StepBatch, and times them.
 *
 * @example
 * const { images, wallSeconds, onnxSeconds } = await measureCeiling(pair, request, 16, 64)
 */
export async function measureCeiling(
  pair: ModelPair,
  request: RunRequest,
  batchRuns: number,
  runs: number,
): Promise<CeilingSample> {
  const { previewEvery: _previewEvery, runId: _runId, model: _model, ...options } = request
  const batch = new StepBatch(pair.models, pair.manifest, batchRuns * modelRows(request))
  const onnxSecondsBefore = pair.heavy.runTime.seconds + pair.light.runTime.seconds
  let images = 0
  const started = performance.now()
  for (let first = 0; first < runs; first += batchRuns) {
    const samplers = Array.from(
      { length: Math.min(batchRuns, runs - first) },
      (_, index) =>
        new SamplerRun<Tensor>(pair.manifest, {
          ...options,
          seed: first + index,
          classIndex: (first + index) % 10,
        }),
    )
    while (!samplers[0]?.done) {
      await batch.heavy(samplers.filter((sampler) => sampler.heavyDue))
      await batch.light(samplers)
    }
    images += samplers.reduce((sum, sampler) => sum + sampler.count, 0)
  }
  return {
    images,
    wallSeconds: (performance.now() - started) / 1000,
    onnxSeconds: pair.heavy.runTime.seconds + pair.light.runTime.seconds - onnxSecondsBefore,
  }
}
