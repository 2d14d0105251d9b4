import { describe, expect, it } from 'vitest'
import { dueRuns, startingVirtualMacs } from '../../../gpu-service/src/scheduler/fair-share.ts'

const run = (name: string, virtualMacs: number) => ({ name, virtualMacs })

describe('dueRuns (start-time fair queuing)', () => {
  it('steps every run within one quantum of the least-served run, in the given order', () => {
    const runs = [run('big', 300), run('small', 10), run('mid', 100)]
    expect(dueRuns(runs, 100).map((due) => due.name)).toEqual(['small', 'mid'])
  })

  it('always steps the least-served run, even with a zero quantum', () => {
    expect(dueRuns([run('a', 5), run('b', 3)], 0).map((due) => due.name)).toEqual(['b'])
  })

  it('keeps equal runs together (they share one call)', () => {
    const runs = [run('a', 7), run('b', 7), run('c', 7)]
    expect(dueRuns(runs, 0)).toEqual(runs)
  })

  it('returns nothing for no runs', () => {
    expect(dueRuns([], 10)).toEqual([])
  })
})

describe('startingVirtualMacs', () => {
  it('starts a newcomer at the least-served active run: it neither waits nor monopolizes', () => {
    expect(startingVirtualMacs([run('a', 5e9), run('b', 2e9)])).toBe(2e9)
    expect(startingVirtualMacs([])).toBe(0)
  })
})
