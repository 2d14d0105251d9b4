import { describe, expect, it } from 'vitest'
import { ceilingBatchRuns } from '../../../gpu-service/src/bench/ceiling.ts'

const limits = { maxBatchRows: 128, maxActiveRuns: 16 }

describe('ceilingBatchRuns', () => {
  it('steps one run per client together', () => {
    expect(ceilingBatchRuns(1, { count: 1, guidance: 1 }, limits)).toBe(1)
    expect(ceilingBatchRuns(4, { count: 1, guidance: 1 }, limits)).toBe(4)
    expect(ceilingBatchRuns(16, { count: 1, guidance: 1 }, limits)).toBe(16)
  })

  it('steps no more runs than the service keeps active', () => {
    expect(ceilingBatchRuns(32, { count: 1, guidance: 1 }, limits)).toBe(16)
  })

  it('steps no more rows than one model call holds, guided images counting twice', () => {
    expect(ceilingBatchRuns(16, { count: 4, guidance: 3 }, limits)).toBe(16)
    expect(ceilingBatchRuns(16, { count: 8, guidance: 3 }, { ...limits, maxBatchRows: 64 })).toBe(4)
    expect(ceilingBatchRuns(4, { count: 64, guidance: 3 }, limits)).toBe(1)
  })
})
