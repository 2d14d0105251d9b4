import { describe, expect, it } from 'vitest'
import { formatIssue, listIssues } from '../../shared/issues.ts'
import { runEventSchema, runRequestSchema } from '../../shared/run-protocol.ts'

const options = {
  classIndex: 7,
  count: 2,
  steps: 8,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 1,
}

function issuesOf(body: unknown): string[] {
  const result = runRequestSchema.safeParse(body)
  return result.success ? [] : listIssues(result.error).map(formatIssue)
}

describe('runRequestSchema', () => {
  it('defaults previewEvery to 0 and leaves runId to the service', () => {
    expect(runRequestSchema.parse(options)).toEqual({ ...options, previewEvery: 0 })
  })

  it('accepts a preview cadence and a caller-chosen run id', () => {
    const body = { ...options, previewEvery: 2, runId: 'job_01J-abc' }
    expect(runRequestSchema.parse(body)).toEqual(body)
  })

  it('keeps the sampling options checks, the unknown-key check and checks the run id', () => {
    expect(
      issuesOf({ ...options, heavySchedule: { steps: [8] }, colour: 'red', runId: 'a b' }),
    ).toEqual([
      'runId: expected 1 to 64 letters, digits, "-" or "_"',
      '(root): Unrecognized key: "colour"',
      'heavySchedule.steps[0]: step 8 is out of range for 8 steps (0..7)',
    ])
  })
})

describe('runEventSchema', () => {
  it('tells events apart by type', () => {
    const event = { type: 'accepted', runId: 'r1', queuePosition: 0 }
    expect(runEventSchema.parse(event)).toEqual(event)
    expect(runEventSchema.safeParse({ ...event, type: 'queued' }).success).toBe(false)
  })
})
