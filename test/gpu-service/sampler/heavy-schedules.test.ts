// The calibrated ({calls: N}) and adaptive heavy schedules as the sampler runs them.
import { describe, expect, it } from 'vitest'
import { type StepEvent, sample } from '../../../gpu-service/src/sampler/sample.ts'
import { SamplerRun } from '../../../gpu-service/src/sampler/sampler-run.ts'
import { StepBatch } from '../../../gpu-service/src/sampler/step-batch.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import { fakeModels } from '../../fixtures/fake-models.ts'
import { validManifest } from '../../fixtures/manifest.ts'

const manifest = {
  ...validManifest(),
  heavyPlacements: {
    6: [[0], [0, 4], [0, 3, 5], [0, 2, 4, 5], [0, 1, 2, 4, 5], [0, 1, 2, 3, 4, 5]],
  },
}
const base: SamplingOptions = {
  classIndex: 2,
  count: 2,
  steps: 6,
  heavySchedule: { every: 1 },
  guidance: 2,
  seed: 5,
}

async function heavyStepsOf(options: SamplingOptions) {
  const events: StepEvent[] = []
  const result = await sample(fakeModels(), manifest, options, (event) => events.push({ ...event }))
  return { result, heavy: events.filter((event) => event.heavy).map((event) => event.step), events }
}

describe('a calibrated heavy schedule ({calls: N})', () => {
  it("runs the heavy encoder where the model's calibration placed N calls", async () => {
    const { heavy, result } = await heavyStepsOf({ ...base, heavySchedule: { calls: 3 } })
    expect(heavy).toEqual([0, 3, 5])
    expect(result.heavyCalls).toBe(3)
  })

  it('gives the pixels of the same placement listed step by step', async () => {
    const calibrated = await sample(fakeModels(), manifest, {
      ...base,
      heavySchedule: { calls: 2 },
    })
    const listed = await sample(fakeModels(), manifest, {
      ...base,
      heavySchedule: { steps: [0, 4] },
    })
    expect(calibrated.images).toEqual(listed.images)
  })

  it('refuses a step count the model has no placements for, saying so', () => {
    expect(
      () => new SamplerRun(manifest, { ...base, steps: 7, heavySchedule: { calls: 3 } }),
    ).toThrow('no calibrated placement of 3 heavy calls in 7 steps')
  })
})

describe('an adaptive heavy schedule', () => {
  it('runs the heavy encoder on step 0 and then when the run itself asks, reporting the count as it goes', async () => {
    const { heavy, events, result } = await heavyStepsOf({
      ...base,
      steps: 12,
      heavySchedule: { adaptive: { tolerance: 0.05 } },
    })
    expect(heavy[0]).toBe(0)
    expect(result.heavyCalls).toBe(heavy.length)
    expect(events.map((event) => event.heavyCalls)).toEqual(
      events.map((_, step) => heavy.filter((h) => h <= step).length),
    )
  })

  it('calls the heavy encoder less often the larger the tolerance', async () => {
    const counts = []
    for (const tolerance of [0.01, 0.2, 1]) {
      const { result } = await heavyStepsOf({
        ...base,
        steps: 12,
        heavySchedule: { adaptive: { tolerance } },
      })
      counts.push(result.heavyCalls)
    }
    // At most every second step: a heavy step restarts the sum, the next step adds to it.
    expect(counts).toEqual([6, 3, 1])
  })

  it('never runs the heavy encoder on the last step, however small the tolerance', async () => {
    const { heavy } = await heavyStepsOf({
      ...base,
      steps: 13,
      heavySchedule: { adaptive: { tolerance: 1e-6 } },
    })
    expect(heavy).toEqual([0, 2, 4, 6, 8, 10])
  })

  it('gives a run the same heavy steps and pixels alone or batched with other runs', async () => {
    const adaptive = { ...base, steps: 12, heavySchedule: { adaptive: { tolerance: 0.05 } } }
    const alone = await sample(fakeModels(), manifest, adaptive)
    const batch = new StepBatch(fakeModels(), manifest, 64)
    const runs = [
      new SamplerRun<Float32Array>(manifest, adaptive),
      new SamplerRun<Float32Array>(manifest, { ...base, steps: 12, seed: 99, count: 3 }),
    ]
    while (runs.some((run) => !run.done)) {
      const active = runs.filter((run) => !run.done)
      await batch.heavy(active.filter((run) => run.heavyDue))
      await batch.light(active)
    }
    expect(runs[0]?.images).toEqual(alone.images)
    expect(runs[0]?.heavyCalls).toBe(alone.heavyCalls)
  })
})
