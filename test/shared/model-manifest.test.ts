import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseManifest, recommendedOptions } from '../../shared/model-manifest.ts'
import { validManifest } from '../fixtures/manifest.ts'

function parseError(json: unknown): Error {
  try {
    parseManifest(json)
  } catch (error) {
    return error as Error
  }
  throw new Error('parseManifest accepted the manifest')
}

describe('parseManifest', () => {
  it('accepts a manifest in the export format, as an object or as JSON text', () => {
    const manifest = validManifest()
    expect(parseManifest(manifest)).toEqual(manifest)
    expect(parseManifest(JSON.stringify(manifest))).toEqual(manifest)
  })

  it('accepts the committed gpu-service/models/manifest.json', () => {
    const text = readFileSync('gpu-service/models/manifest.json', 'utf8')
    expect(parseManifest(text).models.light.outputs[0]?.name).toBe('x0')
  })

  it('rejects a broken manifest with one line per invalid path', () => {
    const manifest = validManifest()
    Object.assign(manifest, { schemaVersion: 2 })
    manifest.models.heavy.sha256 = 'not-a-hash'
    Object.assign(manifest.models.light.inputs[2] ?? {}, { dtype: 'int32' })
    Reflect.deleteProperty(manifest.recommended, 'guidance')

    const error = parseError(manifest)
    expect(error.message.split('\n')).toEqual([
      'Invalid model manifest:',
      '  schemaVersion: Invalid input: expected 1',
      '  models.heavy.sha256: expected 64 lowercase hex digits (sha256)',
      '  models.light.inputs[2].dtype: Invalid option: expected one of "float32"|"int64"',
      '  recommended.guidance: Invalid input: expected number, received undefined',
    ])
  })

  it('rejects a null class that is also a real class', () => {
    const manifest = { ...validManifest(), nullClass: 9 }
    expect(parseError(manifest).message).toContain(
      'nullClass: must not be a real class index (0..9)',
    )
  })

  it('rejects models whose tensor names differ from what the sampler feeds', () => {
    const manifest = validManifest()
    const xT = manifest.models.light.inputs[0]
    if (xT) xT.name = 'x'
    expect(parseError(manifest).message).toContain(
      'models.light.inputs: expected tensors [x_t, t, label, features], got [x, t, label, features]',
    )
  })

  it('rejects light features whose shape differs from the heavy output', () => {
    const manifest = validManifest()
    const features = manifest.models.light.inputs[3]
    if (features) features.shape = ['batch', 16, 28, 28]
    expect(parseError(manifest).message).toContain(
      'models.light.inputs[3].shape: must equal heavy features shape [batch, 8, 28, 28]',
    )
  })

  it('names JSON syntax errors', () => {
    expect(parseError('{ "schemaVersion": ').message).toMatch(
      /^Invalid model manifest: not JSON \(/,
    )
  })

  it('accepts calibrated placements, one per budget, and refuses a malformed one by path', () => {
    const manifest = { ...validManifest(), heavyPlacements: { 3: [[0], [0, 2], [0, 1, 2]] } }
    expect(parseManifest(manifest).heavyPlacements?.['3']?.[1]).toEqual([0, 2])
    const short = { ...validManifest(), heavyPlacements: { 3: [[0], [0, 2]] } }
    expect(parseError(short).message).toContain(
      'heavyPlacements.3: expected one placement per budget 1..3, got 2',
    )
    const unsorted = { ...validManifest(), heavyPlacements: { 3: [[0], [2, 0], [0, 1, 2]] } }
    expect(parseError(unsorted).message).toContain(
      'heavyPlacements.3[1]: expected 2 sorted distinct step indices from 0, below 3',
    )
  })

  it('recommends a calibrated number of heavy calls only where the manifest has that placement', () => {
    const placements = { 3: [[0], [0, 2], [0, 1, 2]] }
    const base = { ...validManifest(), heavyPlacements: placements }
    const calibrated = {
      ...base,
      recommended: { steps: 3, heavyEvery: 2, guidance: 1, heavyCalls: 2 },
    }
    expect(recommendedOptions(parseManifest(calibrated))).toEqual({
      steps: 3,
      heavySchedule: { calls: 2 },
      guidance: 1,
    })
    expect(
      recommendedOptions(
        parseManifest({ ...base, recommended: { steps: 3, heavyEvery: 2, guidance: 1 } }),
      ),
    ).toEqual({
      steps: 3,
      heavySchedule: { every: 2 },
      guidance: 1,
    })
    const uncalibratedSteps = {
      ...calibrated,
      recommended: { ...calibrated.recommended, steps: 4 },
    }
    expect(parseError(uncalibratedSteps).message).toContain(
      'recommended.heavyCalls: no calibrated placement of 2 calls at 4 steps (heavyPlacements)',
    )
    const tooMany = { ...calibrated, recommended: { ...calibrated.recommended, heavyCalls: 4 } }
    expect(parseError(tooMany).message).toContain(
      'recommended.heavyCalls: no calibrated placement of 4 calls at 3 steps',
    )
  })

  it("refuses a distilled model's support that leaves out its own recommended setting", () => {
    const manifest = {
      ...validManifest(),
      recommended: { steps: 50, heavyEvery: 8, guidance: 1 },
      supports: { steps: [8], heavySteps: { 8: [[0, 2, 4, 6]] }, guidance: [1] },
    }
    expect(parseError(manifest).message).toContain(
      'recommended: not supported: this model samples with 8 steps only',
    )
  })
})
