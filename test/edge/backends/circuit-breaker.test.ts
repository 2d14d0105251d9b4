// The circuit breaker's states, on a clock the test moves by hand.
import { describe, expect, it } from 'vitest'
import { CircuitBreaker, DEFAULT_BREAKER } from '../../../edge/src/backends/circuit-breaker.ts'

const options = { failureThreshold: 3, coolDownMs: 1_000 }

/** A breaker opened by three failures at t = 100. */
function opened() {
  const breaker = new CircuitBreaker(options)
  for (let failure = 0; failure < 3; failure++) breaker.failed(100)
  return breaker
}

describe('CircuitBreaker', () => {
  it('defaults to three failures in a row and a ten-second cool-down', () => {
    expect(DEFAULT_BREAKER).toEqual({ failureThreshold: 3, coolDownMs: 10_000 })
  })

  it('lets every attempt through while closed, and opens at the third failure in a row', () => {
    const breaker = new CircuitBreaker(options)
    breaker.failed(0)
    breaker.failed(0)
    expect([breaker.state(0), breaker.allows(0)]).toEqual(['closed', true])
    breaker.failed(0)
    expect([breaker.state(0), breaker.allows(0), breaker.openedAt]).toEqual(['open', false, 0])
  })

  it('counts failures in a row only: a success in between starts the count again', () => {
    const breaker = new CircuitBreaker(options)
    breaker.failed(0)
    breaker.failed(0)
    breaker.succeeded()
    breaker.failed(0)
    breaker.failed(0)
    expect([breaker.state(0), breaker.failures]).toEqual(['closed', 2])
  })

  it('refuses everything for the cool-down, then is half-open and lets exactly one probe through', () => {
    const breaker = opened()
    expect(breaker.allows(1_099)).toBe(false)
    expect(breaker.state(1_100)).toBe('half-open')
    expect(breaker.allows(1_100)).toBe(true)
    expect(breaker.begin(1_100)).toBe(true)
    expect(breaker.allows(1_100)).toBe(false)
    expect(breaker.begin(1_100)).toBe(false)
    expect(breaker.allows(5_000)).toBe(false)
  })

  it('closes when the probe succeeds', () => {
    const breaker = opened()
    breaker.begin(1_100)
    breaker.succeeded()
    expect([breaker.state(1_100), breaker.allows(1_100), breaker.failures]).toEqual([
      'closed',
      true,
      0,
    ])
  })

  it('opens again, for a whole cool-down, when the probe fails', () => {
    const breaker = opened()
    breaker.begin(1_100)
    breaker.failed(1_200)
    expect([breaker.state(1_200), breaker.openedAt]).toEqual(['open', 1_200])
    expect(breaker.allows(2_199)).toBe(false)
    expect(breaker.state(2_200)).toBe('half-open')
  })

  it('frees the probe for another attempt when it ends with no verdict on the backend', () => {
    const breaker = opened()
    breaker.begin(1_100)
    breaker.released()
    expect([breaker.state(1_100), breaker.allows(1_100)]).toEqual(['half-open', true])
  })

  it('keeps its cool-down when more failures arrive while open', () => {
    const breaker = opened()
    breaker.failed(600)
    expect([breaker.openedAt, breaker.state(1_100)]).toEqual([100, 'half-open'])
  })

  it('refuses a threshold below 1 and a negative cool-down', () => {
    expect(() => new CircuitBreaker({ failureThreshold: 0, coolDownMs: 1 })).toThrow(
      new RangeError('failureThreshold must be a positive integer, got 0'),
    )
    expect(() => new CircuitBreaker({ failureThreshold: 1, coolDownMs: -1 })).toThrow(
      new RangeError('coolDownMs must be 0 or more, got -1'),
    )
  })
})
