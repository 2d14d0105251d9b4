import { describe, expect, it } from 'vitest'
import { listIssues } from '../../shared/issues.ts'
import { type SamplingOptions, samplingOptionsSchema } from '../../shared/sampling-options.ts'

const valid: SamplingOptions = {
  classIndex: 7,
  count: 4,
  steps: 50,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 0xffff_ffff,
}

function issuesOf(options: unknown): string[] {
  const result = samplingOptionsSchema.safeParse(options)
  return result.success ? [] : listIssues(result.error).map((issue) => issue.path)
}

describe('samplingOptionsSchema', () => {
  it('accepts the edges of every range', () => {
    expect(issuesOf(valid)).toEqual([])
    expect(
      issuesOf({ ...valid, classIndex: 0, count: 64, steps: 1000, guidance: 20, seed: 0 }),
    ).toEqual([])
    expect(
      issuesOf({ ...valid, steps: 1, count: 1, guidance: 0, heavySchedule: { steps: [0] } }),
    ).toEqual([])
  })

  it.each([
    ['classIndex', { classIndex: 10 }],
    ['classIndex', { classIndex: 1.5 }],
    ['count', { count: 0 }],
    ['count', { count: 65 }],
    ['steps', { steps: 0 }],
    ['steps', { steps: 1001 }],
    ['guidance', { guidance: -0.1 }],
    ['guidance', { guidance: 20.5 }],
    ['seed', { seed: -1 }],
    ['seed', { seed: 2 ** 32 }],
    ['heavySchedule.every', { heavySchedule: { every: 0 } }],
  ])('rejects %s out of range: %j', (path, change) => {
    expect(issuesOf({ ...valid, ...change })).toEqual([path])
  })

  it('rejects explicit heavy steps at or past the step count, naming the index', () => {
    expect(issuesOf({ ...valid, steps: 10, heavySchedule: { steps: [0, 5, 10] } })).toEqual([
      'heavySchedule.steps[2]',
    ])
  })

  it('rejects a heavy schedule that is neither every-K nor a step list', () => {
    expect(issuesOf({ ...valid, heavySchedule: { every: 4, steps: [0] } })).toEqual([
      'heavySchedule',
    ])
  })

  it('rejects unknown fields', () => {
    expect(issuesOf({ ...valid, sampler: 'ddim' })).toEqual(['(root)'])
  })
})
