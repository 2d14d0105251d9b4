import { describe, expect, it } from 'vitest'
import { canonicalJson, resultIdentity, resultKey } from '../../../edge/src/results/result-key.ts'
import { parseImageName } from '../../../edge/src/results/result-store.ts'
import { etagMatches } from '../../../edge/src/routes/results.ts'

const request = {
  classIndex: 7,
  count: 1,
  steps: 50,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 42,
  previewEvery: 0,
}

describe('resultKey', () => {
  it('hashes the model id and the canonical request: key order does not matter', async () => {
    const reordered = {
      seed: 42,
      previewEvery: 0,
      guidance: 2,
      heavySchedule: { every: 4 },
      steps: 50,
      count: 1,
      classIndex: 7,
    }
    expect(await resultKey('s'.repeat(32), 'm', reordered)).toBe(
      await resultKey('s'.repeat(32), 'm', request),
    )
  })

  it('changes with the seed, the model id and the secret, not with the preview cadence or run id', async () => {
    const base = await resultKey('s'.repeat(32), 'm', request)
    expect(await resultKey('s'.repeat(32), 'm', { ...request, seed: 43 })).not.toBe(base)
    expect(await resultKey('s'.repeat(32), 'other', request)).not.toBe(base)
    expect(await resultKey('t'.repeat(32), 'm', request)).not.toBe(base)
    expect(await resultKey('s'.repeat(32), 'm', { ...request, previewEvery: 5, runId: 'r1' })).toBe(
      base,
    )
  })

  it('takes the model from the model id: a `model` field in the request changes nothing', async () => {
    const key = await resultKey('s'.repeat(32), 'dualrate-547fb728e629', request)
    expect(
      await resultKey('s'.repeat(32), 'dualrate-547fb728e629', {
        ...request,
        model: 'dualrate-547fb728e629',
      }),
    ).toBe(key)
    expect(await resultKey('s'.repeat(32), 'dualrate-a8a8a8a8a8a8', request)).not.toBe(key)
  })

  it('covers exactly the model id and the pixel-determining options', () => {
    expect(resultIdentity('dualrate-547fb728e629', request)).toBe(
      'dualrate-547fb728e629\n{"classIndex":7,"count":1,"guidance":2,"heavySchedule":{"every":4},"seed":42,"steps":50}',
    )
  })

  it('canonicalJson sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: [3, { d: 1, c: 2 }], a: null })).toBe(
      '{"a":null,"b":[3,{"c":2,"d":1}]}',
    )
  })
})

describe('parseImageName', () => {
  const key = 'a'.repeat(64)
  it('reads <key>.png as image 0 and <key>-<i>.png as image i', () => {
    expect(parseImageName(`${key}.png`)).toEqual({ key, index: 0 })
    expect(parseImageName(`${key}-12.png`)).toEqual({ key, index: 12 })
  })
  it('refuses anything else', () => {
    expect(parseImageName(`${key}.jpg`)).toBeNull()
    expect(parseImageName('../x.png')).toBeNull()
    expect(parseImageName(`${key.toUpperCase()}.png`)).toBeNull()
  })
})

describe('etagMatches', () => {
  it('matches by weak comparison in a list, and * matches anything', () => {
    expect(etagMatches('"a", "b"', '"b"')).toBe(true)
    expect(etagMatches('W/"b"', '"b"')).toBe(true)
    expect(etagMatches('*', '"b"')).toBe(true)
    expect(etagMatches('"c"', '"b"')).toBe(false)
    expect(etagMatches(undefined, '"b"')).toBe(false)
  })
})
