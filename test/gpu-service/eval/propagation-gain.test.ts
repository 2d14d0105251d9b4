import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { measurePropagationGain } from '../../../gpu-service/src/eval/propagation-gain.ts'
import type { DualRateModels } from '../../../gpu-service/src/sampler/sample.ts'
import { parseManifest } from '../../../shared/model-manifest.ts'

const manifest = parseManifest(readFileSync('gpu-service/models/manifest.json', 'utf8'))
const settings = { steps: 6, trajectories: 4, batch: 2, guidance: 1, seed: 3, probeAge: 2 }

/** Features are the state they were computed from; x0 mixes x_t with them (or ignores them). */
function fakeModels(featureWeight: number, calls = { heavy: 0, light: 0 }) {
  const models: DualRateModels<Float32Array> = {
    async heavy({ xS }) {
      calls.heavy++
      return xS.slice()
    },
    async light({ xT, features }) {
      calls.light++
      const [rows] = features
      if (!rows) throw new Error('no features')
      return xT.map((x, i) => 0.5 * x + featureWeight * (rows.features[i] as number))
    },
  }
  return models
}

describe('measurePropagationGain', () => {
  it('has no gain at step 0 (no older features) and a gain of 1 at the last step (x_tNext is the image)', async () => {
    const { gain } = await measurePropagationGain(fakeModels(0.4), manifest, settings)
    expect(gain).toHaveLength(6)
    expect(gain[0]).toBeNull()
    expect(gain[5]).toBe(1)
    for (const value of gain.slice(1, 5)) expect(value).toBeGreaterThan(0)
  })

  it('finds nothing to carry when the light net ignores the features', async () => {
    const { gain } = await measurePropagationGain(fakeModels(0), manifest, settings)
    expect(gain.slice(1, 5)).toEqual([null, null, null, null])
  })

  it('replays with the reference features: the heavy encoder runs only on the reference runs', async () => {
    const calls = { heavy: 0, light: 0 }
    await measurePropagationGain(fakeModels(0.4, calls), manifest, settings)
    // 4 trajectories over 10 classes: 4 sampler calls of one image; each is a reference of 6 steps,
    // then 4 replays (steps 1 to 4) of 6 light steps.
    expect(calls.heavy).toBe(4 * 6)
    expect(calls.light).toBe(4 * (6 + 4 * 6))
  })

  it('gives the same gains for the same seed', async () => {
    const first = await measurePropagationGain(fakeModels(0.4), manifest, settings)
    const again = await measurePropagationGain(fakeModels(0.4), manifest, settings)
    expect(again).toEqual(first)
  })

  it('refuses a probe age below 1', async () => {
    await expect(
      measurePropagationGain(fakeModels(0.4), manifest, { ...settings, probeAge: 0 }),
    ).rejects.toThrow('probeAge must be a positive integer, got 0')
  })
})
