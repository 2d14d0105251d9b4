import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseManifest } from '../../shared/model-manifest.ts'
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
})
