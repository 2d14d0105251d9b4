import { describe, expect, it } from 'vitest'
import { imageNoiseStreams } from '../../../gpu-service/src/sampler/rng.ts'

function draw(seed: number, count: number, length: number): Float32Array[] {
  return imageNoiseStreams(seed, count).map((stream) => {
    const values = new Float32Array(length)
    stream.fill(values)
    return values
  })
}

describe('imageNoiseStreams', () => {
  it('repeats for the same seed and differs for another', () => {
    expect(draw(7, 2, 64)).toEqual(draw(7, 2, 64))
    expect(draw(7, 1, 64)[0]).not.toEqual(draw(8, 1, 64)[0])
  })

  it('gives image n the same stream whatever the count', () => {
    const three = draw(42, 3, 100)
    const five = draw(42, 5, 100)
    expect(five.slice(0, 3)).toEqual(three)
    expect(three[1]).not.toEqual(three[0])
  })

  it('draws in order: one fill of 2N values equals two fills of N', () => {
    const [whole] = draw(3, 1, 20)
    const [stream] = imageNoiseStreams(3, 1)
    const first = new Float32Array(10)
    const second = new Float32Array(10)
    stream?.fill(first)
    stream?.fill(second)
    expect([...first, ...second]).toEqual([...(whole ?? [])])
  })

  it('is standard normal: mean near 0, variance near 1 over many draws', () => {
    const [values = new Float32Array()] = draw(123, 1, 200_000)
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length
    const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length
    // Standard errors: 1 / sqrt(n) = 0.0022 for the mean, sqrt(2 / n) = 0.0032 for the variance.
    expect(Math.abs(mean)).toBeLessThan(0.01)
    expect(Math.abs(variance - 1)).toBeLessThan(0.015)
  })

  it('rejects a seed outside uint32', () => {
    expect(() => imageNoiseStreams(2 ** 32, 1)).toThrow(
      new RangeError('seed must be an unsigned 32-bit integer, got 4294967296'),
    )
  })
})
