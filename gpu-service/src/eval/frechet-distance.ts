// Frechet distance between two Gaussians fitted to feature vectors (Heusel et al. 2017, "FID", with the
// evaluator classifier's penultimate layer in place of Inception's):
//   FD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))
import { EigenvalueDecomposition, Matrix } from 'ml-matrix'

export interface GaussianStats {
  mean: Float64Array
  /** Row-major `dim * dim` sample covariance (divided by n - 1). */
  covariance: Float64Array
  dim: number
  count: number
}

/**
 * Mean and covariance of `count` feature rows of length `dim` stored back to back.
 *
 * @example
 * const stats = gaussianStats(features, 128)
 */
export function gaussianStats(features: Float32Array, dim: number): GaussianStats {
  const count = features.length / dim
  if (!Number.isInteger(count) || count < 2) {
    throw new Error(`need at least two rows of ${dim} features, got ${features.length} values`)
  }
  const mean = new Float64Array(dim)
  for (let row = 0; row < count; row++) {
    for (let i = 0; i < dim; i++)
      mean[i] = (mean[i] as number) + (features[row * dim + i] as number)
  }
  for (let i = 0; i < dim; i++) mean[i] = (mean[i] as number) / count
  const covariance = new Float64Array(dim * dim)
  const centered = new Float64Array(dim)
  for (let row = 0; row < count; row++) {
    for (let i = 0; i < dim; i++)
      centered[i] = (features[row * dim + i] as number) - (mean[i] as number)
    for (let i = 0; i < dim; i++) {
      const ci = centered[i] as number
      for (let j = i; j < dim; j++)
        covariance[i * dim + j] = (covariance[i * dim + j] as number) + ci * (centered[j] as number)
    }
  }
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const value = (covariance[i * dim + j] as number) / (count - 1)
      covariance[i * dim + j] = value
      covariance[j * dim + i] = value
    }
  }
  return { mean, covariance, dim, count }
}

function toMatrix(values: Float64Array, dim: number): Matrix {
  return new Matrix(
    Array.from({ length: dim }, (_, i) => Array.from(values.subarray(i * dim, (i + 1) * dim))),
  )
}

/** Symmetric PSD square root through the eigendecomposition (negative round-off eigenvalues -> 0). */
function sqrtPsd(matrix: Matrix): Matrix {
  const { eigenvectorMatrix: vectors, realEigenvalues } = new EigenvalueDecomposition(matrix, {
    assumeSymmetric: true,
  })
  const roots = Matrix.diag(realEigenvalues.map((value) => Math.sqrt(Math.max(value, 0))))
  return vectors.mmul(roots).mmul(vectors.transpose())
}

/**
 * FD between two fitted Gaussians. Tr((S1 S2)^(1/2)) is computed as the sum of square roots of the
 * eigenvalues of S1^(1/2) S2 S1^(1/2), which is symmetric PSD and has the same spectrum as S1 S2.
 *
 * @example
 * const fd = frechetDistance(gaussianStats(samples, 128), gaussianStats(reference, 128))
 */
export function frechetDistance(a: GaussianStats, b: GaussianStats): number {
  if (a.dim !== b.dim) throw new Error(`feature dims differ: ${a.dim} vs ${b.dim}`)
  const dim = a.dim
  let meanTerm = 0
  let traceTerm = 0
  for (let i = 0; i < dim; i++) {
    meanTerm += ((a.mean[i] as number) - (b.mean[i] as number)) ** 2
    traceTerm += (a.covariance[i * dim + i] as number) + (b.covariance[i * dim + i] as number)
  }
  const rootA = sqrtPsd(toMatrix(a.covariance, dim))
  const product = rootA.mmul(toMatrix(b.covariance, dim)).mmul(rootA)
  const symmetric = product.add(product.transpose()).div(2)
  const { realEigenvalues } = new EigenvalueDecomposition(symmetric, { assumeSymmetric: true })
  const traceSqrt = realEigenvalues.reduce((sum, value) => sum + Math.sqrt(Math.max(value, 0)), 0)
  return meanTerm + traceTerm - 2 * traceSqrt
}
