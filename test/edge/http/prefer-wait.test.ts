import { describe, expect, it } from 'vitest'
import { parsePreferWait } from '../../../edge/src/http/prefer-wait.ts'

describe('parsePreferWait', () => {
  it('reads wait=N among other preferences', () => {
    expect(parsePreferWait('respond-async, wait=10')).toBe(10)
    expect(parsePreferWait('wait="5"')).toBe(5)
  })
  it('caps the wait at 60 seconds', () => {
    expect(parsePreferWait('wait=600')).toBe(60)
  })
  it('is null without a wait preference', () => {
    expect(parsePreferWait(undefined)).toBeNull()
    expect(parsePreferWait('respond-async')).toBeNull()
  })
})
