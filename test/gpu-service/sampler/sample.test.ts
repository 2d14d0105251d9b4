import { describe, expect, it } from 'vitest'
import { type StepEvent, sample } from '../../../gpu-service/src/sampler/sample.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import { fakeModels, type ModelCall, PIXELS } from '../../fixtures/fake-models.ts'
import { validManifest } from '../../fixtures/manifest.ts'

const manifest = validManifest()

const options: SamplingOptions = {
  classIndex: 3,
  count: 3,
  steps: 6,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 11,
}

function image(images: Float32Array, n: number): Float32Array {
  return images.slice(n * PIXELS, (n + 1) * PIXELS)
}

describe('sample', () => {
  it('gives identical pixels for the same seed and different pixels for another seed', async () => {
    const first = await sample(fakeModels(), manifest, options)
    const again = await sample(fakeModels(), manifest, options)
    const other = await sample(fakeModels(), manifest, { ...options, seed: 12 })
    expect(again.images).toEqual(first.images)
    expect(other.images).not.toEqual(first.images)
  })

  it('gives image n the same pixels whatever the count, with and without guidance', async () => {
    for (const guidance of [1, 2]) {
      const small = await sample(fakeModels(), manifest, { ...options, guidance, count: 2 })
      const large = await sample(fakeModels(), manifest, { ...options, guidance, count: 5 })
      expect(image(large.images, 0)).toEqual(image(small.images, 0))
      expect(image(large.images, 1)).toEqual(image(small.images, 1))
      expect(image(large.images, 1)).not.toEqual(image(large.images, 0))
    }
  })

  it('batches conditional then unconditional rows in one call per model when guidance is not 1', async () => {
    const calls: ModelCall[] = []
    await sample(fakeModels(calls), manifest, options)
    for (const call of calls) {
      expect(call.rows).toBe(6)
      expect(call.label).toEqual([3n, 3n, 3n, 10n, 10n, 10n])
      // Both halves see the same x.
      expect(call.x.subarray(3 * PIXELS)).toEqual(call.x.subarray(0, 3 * PIXELS))
    }
  })

  it('skips the unconditional rows when guidance is 1', async () => {
    const calls: ModelCall[] = []
    await sample(fakeModels(calls), manifest, { ...options, guidance: 1 })
    for (const call of calls) {
      expect(call.rows).toBe(3)
      expect(call.label).toEqual([3n, 3n, 3n])
    }
  })

  it('runs the heavy encoder on scheduled steps only, on the same x and t as the light step', async () => {
    const calls: ModelCall[] = []
    await sample(fakeModels(calls), manifest, { ...options, steps: 6, heavySchedule: { every: 4 } })
    expect(calls.map((call) => `${call.model}@${call.time[0]?.toFixed(4)}`)).toEqual([
      'heavy@1.0000',
      'light@1.0000',
      'light@0.8333',
      'light@0.6667',
      'light@0.5000',
      'heavy@0.3333',
      'light@0.3333',
      'light@0.1667',
    ])
    const [heavyAtStep4, lightAtStep4] = [calls[5], calls[6]]
    expect(heavyAtStep4?.x).toEqual(lightAtStep4?.x)
  })

  it('reports each step through onStep and counts calls and MACs per image row', async () => {
    const events: Omit<StepEvent, 'x0'>[] = []
    const result = await sample(
      fakeModels(),
      manifest,
      { ...options, heavySchedule: { steps: [3] } },
      ({ x0, ...event }) => {
        expect(x0).toHaveLength(3 * PIXELS)
        events.push(event)
      },
    )
    expect(events.map((event) => [event.step, event.heavy])).toEqual([
      [0, true],
      [1, false],
      [2, false],
      [3, true],
      [4, false],
      [5, false],
    ])
    expect(events.every((event) => event.totalSteps === 6)).toBe(true)
    expect(events[5]?.t).toBeCloseTo(1 / 6, 12)
    expect(result).toMatchObject({ count: 3, pixels: PIXELS, heavyCalls: 2, lightCalls: 6 })
    // 6 rows (3 images, conditional and unconditional) per call.
    expect(result.macs).toBe(6 * (2 * 6_000_000 + 6 * 1_000_000))
    expect(result.wallMs).toBeGreaterThanOrEqual(0)
  })

  it('returns images inside the clip range, equal to the last clipped x0', async () => {
    let lastX0 = new Float32Array()
    const result = await sample(fakeModels(), manifest, { ...options, guidance: 8 }, ({ x0 }) => {
      lastX0 = x0.slice()
    })
    expect(Math.max(...result.images)).toBeLessThanOrEqual(1)
    expect(Math.min(...result.images)).toBeGreaterThanOrEqual(-1)
    expect(result.images).toEqual(lastX0)
  })

  it('rejects invalid options with the schema error', async () => {
    await expect(sample(fakeModels(), manifest, { ...options, count: 0 })).rejects.toThrow(
      /Too small: expected number to be >=1/,
    )
  })
})
