import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Tensor } from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModelPair, type ModelPair } from '../../../gpu-service/src/onnx/model-pair.ts'
import { sample } from '../../../gpu-service/src/sampler/sample.ts'
import { SamplerRun } from '../../../gpu-service/src/sampler/sampler-run.ts'
import { StepBatch } from '../../../gpu-service/src/sampler/step-batch.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import { validManifest } from '../../fixtures/manifest.ts'

const options: SamplingOptions = {
  classIndex: 7,
  count: 2,
  steps: 12,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 5,
}

describe('sampling with the committed ONNX pair', () => {
  let pair: ModelPair
  beforeAll(async () => {
    pair = await loadModelPair('gpu-service/models', { device: 'cpu', intraOpThreads: 1 })
  })
  afterAll(async () => {
    await pair.release()
  })

  it('gives identical pixels for the same seed', async () => {
    const first = await sample(pair.models, pair.manifest, options)
    const again = await sample(pair.models, pair.manifest, options)
    expect(again.images).toEqual(first.images)
    expect(first.heavyCalls).toBe(3)
    expect(first.lightCalls).toBe(12)
  })

  it('gives image n the same pixels whatever the count', async () => {
    const small = await sample(pair.models, pair.manifest, options)
    const large = await sample(pair.models, pair.manifest, { ...options, count: 5 })
    const pixels = small.pixels
    let maxAbsDifference = 0
    for (let i = 0; i < 2 * pixels; i++) {
      const difference = Math.abs((large.images[i] as number) - (small.images[i] as number))
      maxAbsDifference = Math.max(maxAbsDifference, difference)
    }
    // Exact on one thread; the margin allows kernels that block differently for another batch size.
    // Noise that depended on count would differ by O(1).
    expect(maxAbsDifference).toBeLessThan(1e-5)
  })

  it('gives runs stepped together the pixels they get alone, whether they share heavy calls or not', async () => {
    // a and b share every heavy call (their features pass to the light call as one tensor); c refreshes
    // on other steps, so its rows are joined with theirs.
    const runOptions = [
      { ...options, seed: 1 },
      { ...options, classIndex: 3, count: 1, seed: 2 },
      { ...options, classIndex: 4, count: 1, seed: 3, heavySchedule: { every: 3 } },
    ]
    const runs = runOptions.map((runOption) => new SamplerRun<Tensor>(pair.manifest, runOption))
    const batch = new StepBatch(pair.models, pair.manifest, 16)
    while (!runs[0]?.done) {
      await batch.heavy(runs.filter((run) => run.heavyDue))
      await batch.light(runs)
    }
    for (const [index, run] of runs.entries()) {
      const alone = await sample(pair.models, pair.manifest, runOptions[index] as SamplingOptions)
      let maxAbsDifference = 0
      for (let i = 0; i < alone.images.length; i++) {
        const difference = Math.abs((run.images[i] as number) - (alone.images[i] as number))
        maxAbsDifference = Math.max(maxAbsDifference, difference)
      }
      expect(maxAbsDifference).toBeLessThan(1e-5)
    }
  })

  it('names the manifest path when the manifest is missing or invalid', async () => {
    await expect(loadModelPair('test/fixtures')).rejects.toThrow(
      new Error('test/fixtures/manifest.json: not found'),
    )
    const dir = await mkdtemp(join(tmpdir(), 'dualrate-manifest-'))
    try {
      await writeFile(
        join(dir, 'manifest.json'),
        JSON.stringify({ ...validManifest(), nullClass: 3 }),
      )
      await expect(loadModelPair(dir)).rejects.toThrow(
        new Error(
          `${join(dir, 'manifest.json')}: Invalid model manifest:\n` +
            '  nullClass: must not be a real class index (0..9)',
        ),
      )
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
