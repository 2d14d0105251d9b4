import { describe, expect, it } from 'vitest'
import { sample } from '../../../gpu-service/src/sampler/sample.ts'
import { SamplerRun } from '../../../gpu-service/src/sampler/sampler-run.ts'
import { StepBatch } from '../../../gpu-service/src/sampler/step-batch.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import { fakeModels, type ModelCall } from '../../fixtures/fake-models.ts'
import { validManifest } from '../../fixtures/manifest.ts'

const manifest = validManifest()
const base: SamplingOptions = {
  classIndex: 1,
  count: 2,
  steps: 7,
  heavySchedule: { every: 3 },
  guidance: 2,
  seed: 4,
}

/** Steps every run together until all are done, as the scheduler does; `join` delays a run's start. */
async function stepTogether(options: SamplingOptions[], join: number[], calls: ModelCall[]) {
  const batch = new StepBatch(fakeModels(calls), manifest, 64)
  const runs = options.map((o) => new SamplerRun<Float32Array>(manifest, o))
  for (let tick = 0; runs.some((run) => !run.done); tick++) {
    const active = runs.filter((run, i) => tick >= (join[i] ?? 0) && !run.done)
    await batch.heavy(active.filter((run) => run.heavyDue))
    await batch.light(active)
  }
  return runs
}

describe('StepBatch', () => {
  it('gives each run the pixels it gets alone, whatever joins its calls and when', async () => {
    const options = [
      base,
      { ...base, classIndex: 5, count: 3, seed: 9, heavySchedule: { steps: [2, 5] } },
      { ...base, guidance: 1, steps: 4 },
    ]
    const calls: ModelCall[] = []
    const runs = await stepTogether(options, [0, 1, 2], calls)
    for (const [i, run] of runs.entries()) {
      const alone = await sample(fakeModels(), manifest, options[i] as SamplingOptions)
      expect(run.images).toEqual(alone.images)
      expect([run.heavyCalls, run.lightCalls, run.macs]).toEqual([
        alone.heavyCalls,
        alone.lightCalls,
        alone.macs,
      ])
    }
    // Runs share calls: rows 4 (run 0), 6 (run 1, from tick 1) and 2 (run 2, ticks 2 to 5).
    expect(calls.filter((call) => call.model === 'light').map((call) => call.rows)).toEqual([
      4, 10, 12, 12, 12, 12, 10, 6,
    ])
    // Heavy calls hold only the runs due: run 0 on ticks 0, 3, 6; run 1 on 1, 3, 6; run 2 on 2, 5.
    expect(calls.filter((call) => call.model === 'heavy').map((call) => call.rows)).toEqual([
      4,
      6,
      2,
      4 + 6,
      2,
      4 + 6,
    ])
  })

  it('refuses a batch over maxRows and a light call before the step heavy call', async () => {
    const batch = new StepBatch(fakeModels(), manifest, 5)
    const run = new SamplerRun<Float32Array>(manifest, base)
    await expect(batch.heavy([run, new SamplerRun(manifest, base)])).rejects.toThrow(
      new RangeError('batch of 8 rows exceeds maxRows 5'),
    )
    await expect(batch.light([run])).rejects.toThrow(
      new Error('heavy schedule must include step 0'),
    )
  })
})
