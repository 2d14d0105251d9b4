import { describe, expect, it } from 'vitest'
import { packCalls } from '../../../gpu-service/src/scheduler/pack-calls.ts'

const runs = (...rows: number[]) => rows.map((count, index) => ({ name: `r${index}`, rows: count }))
const names = (calls: { name: string }[][]) => calls.map((call) => call.map((run) => run.name))

describe('packCalls', () => {
  it('puts runs that fit together into one call, in order', () => {
    expect(names(packCalls(runs(2, 4, 8), 128))).toEqual([['r0', 'r1', 'r2']])
  })

  it('gives a full-size run a call of its own and packs the rest beside it, first fit', () => {
    expect(names(packCalls(runs(128, 1, 100, 30, 27), 128))).toEqual([
      ['r0'],
      ['r1', 'r2', 'r4'],
      ['r3'],
    ])
  })

  it('never puts more than maxRows rows into a call, nor splits a run', () => {
    const items = runs(3, 3, 3, 1, 2, 4, 4)
    const calls = packCalls(items, 4)
    for (const call of calls)
      expect(call.reduce((sum, run) => sum + run.rows, 0)).toBeLessThanOrEqual(4)
    expect(calls.flat().sort((a, b) => a.name.localeCompare(b.name))).toEqual(items)
  })

  it('packs nothing into no calls', () => {
    expect(packCalls([], 128)).toEqual([])
  })

  it('refuses a run larger than a call', () => {
    expect(() => packCalls(runs(129), 128)).toThrow(
      new RangeError('an item of 129 rows exceeds maxRows 128'),
    )
  })
})
