// `npm run sample`'s heavy-schedule flags against the manifest: no flag runs the model's recommended
// schedule, which is the calibrated placement where the manifest recommends a number of calls.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { readSampleArgs, resolveSampleArgs } from '../../../gpu-service/src/cli/sample-args.ts'
import { parseManifest } from '../../../shared/model-manifest.ts'

const committed = parseManifest(readFileSync('gpu-service/models/manifest.json', 'utf8'))
const withCalls = parseManifest({
  ...committed,
  recommended: { ...committed.recommended, heavyCalls: 5 },
})
const resolve = (argv: string[], manifest = committed) =>
  resolveSampleArgs(readSampleArgs(['--class', 'Sneaker', '--out-dir', 'out', ...argv]), manifest)
    .options.heavySchedule

describe('npm run sample heavy-schedule flags', () => {
  it('runs every heavyEvery steps when the manifest recommends a uniform schedule and no flag is given', () => {
    expect(
      resolve([], {
        ...committed,
        recommended: { ...committed.recommended, heavyCalls: undefined },
      }),
    ).toEqual({
      every: committed.recommended.heavyEvery,
    })
  })

  it('runs the recommended calibrated calls when the manifest names a number and no flag is given', () => {
    expect(resolve([], withCalls)).toEqual({ calls: 5 })
    // Placements exist at 50 steps only: elsewhere about as many calls per step, uniform.
    expect(resolve(['--steps', '20'], withCalls)).toEqual({ every: 10 })
  })

  it('runs what a flag asks for instead', () => {
    expect(resolve(['--heavy-every', '4'], withCalls)).toEqual({ every: 4 })
    expect(resolve(['--heavy-calls', '9'], withCalls)).toEqual({ calls: 9 })
    expect(resolve(['--adaptive', '0.02'], withCalls)).toEqual({ adaptive: { tolerance: 0.02 } })
  })
})
