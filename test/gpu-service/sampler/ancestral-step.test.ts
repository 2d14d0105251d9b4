import { describe, expect, it } from 'vitest'
import {
  ancestralStep,
  posteriorCoefficients,
} from '../../../gpu-service/src/sampler/ancestral-step.ts'

// alphaBar(0.5) and alphaBar(0.25) of the cosine schedule (see schedule.test.ts).
const abT = 0.49384359044063775
const abN = 0.8470121613269047

// Hand computation by Gaussian conditioning rather than Ho et al.'s closed form, in Python:
//   a = abT / abN; x_tNext ~ N(sqrt(abN) x0, 1 - abN); x_t | x_tNext ~ N(sqrt(a) x_tNext, 1 - a)
//   var = 1 / (1 / (1 - abN) + a / (1 - a))
//   mean = var * (sqrt(abN) x0 / (1 - abN) + sqrt(a) x_t / (1 - a))
const expectedVariance = 0.12602728212265396
const expectedCoefX0 = 0.7581453650171409
const expectedCoefXt = 0.23079269376841866

describe('posteriorCoefficients', () => {
  it('matches the Gaussian-conditioning posterior for t = 0.5 -> 0.25', () => {
    const coefs = posteriorCoefficients(abT, abN)
    expect(coefs.posteriorMeanCoefX0).toBeCloseTo(expectedCoefX0, 14)
    expect(coefs.posteriorMeanCoefXt).toBeCloseTo(expectedCoefXt, 14)
    expect(coefs.posteriorVariance).toBeCloseTo(expectedVariance, 14)
  })

  it('returns x0 itself, with no variance, on the last step (tNext = 0)', () => {
    expect(posteriorCoefficients(abT, 1)).toEqual({
      posteriorMeanCoefX0: 1,
      posteriorMeanCoefXt: 0,
      posteriorVariance: 0,
    })
  })
})

describe('ancestralStep', () => {
  const x0Cond = Float32Array.of(0.5, -0.9, 1.4, 0.1)
  const x0Uncond = Float32Array.of(0.2, -0.5, 0.6, 0.3)

  it('guides, clips after guidance, takes the posterior mean and adds the injected noise', () => {
    const x = Float32Array.of(0.3, -1.2, 0.8, 2.0)
    const x0 = new Float32Array(4)
    const noise = Float32Array.of(0.5, -1.0, 0.25, 2.0)
    ancestralStep(
      { x, x0Cond, x0Uncond, x0, noise },
      { guidance: 3, clipX0: [-1, 1], coefficients: posteriorCoefficients(abT, abN) },
    )
    // Guided uncond + 3 (cond - uncond) = [1.1, -1.7, 3.0, -0.3]; clipped to [-1, 1].
    expect([...x0]).toEqual([1, -1, 1, Math.fround(-0.3)])
    // mean + sqrt(var) z, from the Python computation above.
    const expected = [
      1.0048847802690206, -1.3900998117819514, 1.0315303235925528, 0.9441482065171108,
    ]
    x.forEach((value, i) => {
      expect(value).toBeCloseTo(expected[i] as number, 6)
    })
  })

  it('uses the conditional rows alone when guidance is skipped, and adds no noise when there is none', () => {
    const x = Float32Array.of(0.3, -1.2, 0.8, 2.0)
    const x0 = new Float32Array(4)
    ancestralStep(
      { x, x0Cond, x0Uncond: null, x0, noise: null },
      { guidance: 1, clipX0: [-1, 1], coefficients: posteriorCoefficients(abT, 1) },
    )
    // Last step: x_tNext = clipped x0.
    expect([...x]).toEqual([0.5, -0.9, 1, 0.1].map(Math.fround))
    expect([...x0]).toEqual([...x])
  })
})
