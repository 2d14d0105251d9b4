import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { measureReuseCost } from '../../../gpu-service/src/eval/reuse-cost.ts'
import type { DualRateModels } from '../../../gpu-service/src/sampler/sample.ts'
import { parseManifest } from '../../../shared/model-manifest.ts'

const manifest = parseManifest(readFileSync('gpu-service/models/manifest.json', 'utf8'))
const settings = { steps: 6, trajectories: 4, batch: 2, guidance: 1, seed: 3, maxAge: 5 }

/** Features are the state they were computed from; x0 mixes x_t with them (or ignores them). */
function fakeModels(featureWeight: number): DualRateModels<Float32Array> {
  return {
    async heavy({ xS }) {
      return xS.slice()
    },
    async light({ xT, features }) {
      const [rows] = features
      if (!rows) throw new Error('no features')
      return xT.map((x, i) => 0.5 * x + featureWeight * (rows.features[i] as number))
    },
  }
}

describe('measureReuseCost', () => {
  it('measures every age up to the step and leaves older ages empty', async () => {
    const table = await measureReuseCost(fakeModels(0.4), manifest, settings)
    expect(table.stateRms.mean).toHaveLength(6)
    expect(table.stateRms.mean[0]).toEqual([null, null, null, null, null])
    expect(table.stateRms.mean[2]?.slice(2)).toEqual([null, null, null])
    for (let step = 1; step < 6; step++) {
      for (let age = 1; age <= step; age++) {
        expect(table.stateRms.mean[step]?.[age - 1]).toBeGreaterThan(0)
        expect(table.x0RelL2.mean[step]?.[age - 1]).toBeGreaterThan(0)
      }
    }
  })

  it('finds no cost when the light net ignores the features', async () => {
    const table = await measureReuseCost(fakeModels(0), manifest, settings)
    expect(table.stateRms.mean.flat().filter((value) => value !== null && value !== 0)).toEqual([])
  })

  it('gives the same table for the same seed and another for another seed', async () => {
    const first = await measureReuseCost(fakeModels(0.4), manifest, settings)
    const again = await measureReuseCost(fakeModels(0.4), manifest, settings)
    const other = await measureReuseCost(fakeModels(0.4), manifest, { ...settings, seed: 4 })
    expect(again).toEqual(first)
    expect(other.stateRms.mean).not.toEqual(first.stateRms.mean)
  })

  it('caps the ages at steps - 1', async () => {
    const table = await measureReuseCost(fakeModels(0.4), manifest, { ...settings, maxAge: 99 })
    expect(table.maxAge).toBe(5)
  })
})
