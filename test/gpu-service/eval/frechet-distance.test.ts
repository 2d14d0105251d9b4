import { describe, expect, it } from 'vitest'
import {
  frechetDistance,
  type GaussianStats,
  gaussianStats,
} from '../../../gpu-service/src/eval/frechet-distance.ts'

function diagonal(mean: number[], variances: number[]): GaussianStats {
  const dim = mean.length
  const covariance = new Float64Array(dim * dim)
  variances.forEach((variance, i) => {
    covariance[i * dim + i] = variance
  })
  return { mean: Float64Array.from(mean), covariance, dim, count: 100 }
}

describe('gaussianStats', () => {
  it('gives the mean and the n - 1 sample covariance of the rows', () => {
    // Rows (1, 2), (3, 6), (5, 10): mean (3, 6); var x = 4, var y = 16, cov = 8.
    const stats = gaussianStats(Float32Array.from([1, 2, 3, 6, 5, 10]), 2)
    expect(Array.from(stats.mean)).toEqual([3, 6])
    expect(Array.from(stats.covariance)).toEqual([4, 8, 8, 16])
    expect(stats.count).toBe(3)
  })

  it('refuses fewer than two rows', () => {
    expect(() => gaussianStats(Float32Array.from([1, 2]), 2)).toThrow(
      new Error('need at least two rows of 2 features, got 2 values'),
    )
  })
})

describe('frechetDistance', () => {
  it('is zero between identical Gaussians', () => {
    const stats = gaussianStats(Float32Array.from([1, 2, 3, 6, 5, 10, 0, 1]), 2)
    expect(frechetDistance(stats, stats)).toBeCloseTo(0, 9)
  })

  it('equals |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2 for diagonal covariances', () => {
    // Means differ by (1, 2) -> 5; variances (4, 9) vs (1, 16) -> (2 - 1)^2 + (3 - 4)^2 = 2.
    const fd = frechetDistance(diagonal([0, 0], [4, 9]), diagonal([1, 2], [1, 16]))
    expect(fd).toBeCloseTo(7, 9)
  })

  it('matches the closed form for a rotated (non-diagonal) covariance', () => {
    // S1 = R diag(4, 1) R^T with R a 45 degree rotation, S2 = I: Tr((S1 S2)^1/2) = 2 + 1 = 3,
    // so FD = Tr(S1) + Tr(S2) - 2 * 3 = 5 + 2 - 6 = 1.
    const s1: GaussianStats = {
      mean: Float64Array.from([0, 0]),
      covariance: Float64Array.from([2.5, 1.5, 1.5, 2.5]),
      dim: 2,
      count: 100,
    }
    expect(frechetDistance(s1, diagonal([0, 0], [1, 1]))).toBeCloseTo(1, 9)
  })

  it('refuses features of different widths', () => {
    expect(() => frechetDistance(diagonal([0], [1]), diagonal([0, 0], [1, 1]))).toThrow(
      new Error('feature dims differ: 1 vs 2'),
    )
  })
})
