// One ancestral (DDPM) sampler step for an x0-predicting model, written as the paper's stages. Works on
// whole batches in caller-owned buffers so the sampling loop allocates nothing per step.

/** Coefficients of the DDPM posterior q(x_tNext | x_t, x0) = N(mean, variance). */
export interface PosteriorCoefficients {
  /** Weight of x0 in the posterior mean. */
  posteriorMeanCoefX0: number
  /** Weight of x_t in the posterior mean. */
  posteriorMeanCoefXt: number
  posteriorVariance: number
}

/**
 * DDPM posterior, Ho et al. 2020 eq. 6-7, in continuous time: with abT = alphaBar(t), abN = alphaBar(tNext)
 * the per-step beta is 1 - abT / abN.
 *
 * @example
 * const coefs = posteriorCoefficients(alphaBar(t, schedule), alphaBar(tNext, schedule))
 */
export function posteriorCoefficients(abT: number, abN: number): PosteriorCoefficients {
  const beta = 1 - abT / abN
  return {
    posteriorMeanCoefX0: (Math.sqrt(abN) * beta) / (1 - abT),
    posteriorMeanCoefXt: (Math.sqrt(abT / abN) * (1 - abN)) / (1 - abT),
    posteriorVariance: ((1 - abN) / (1 - abT)) * beta,
  }
}

/** The buffers of one step, each `count * pixels` long except where noted. */
export interface AncestralStepBuffers {
  /** x_t on entry, x_tNext on return (updated in place). */
  x: Float32Array
  /** Stage 1 output: the model's x0 for the conditional rows. */
  x0Cond: Float32Array
  /** Stage 1 output for the unconditional rows; null when guidance is 1 and they were skipped. */
  x0Uncond: Float32Array | null
  /** Written: the guided, clipped x0 that the posterior uses. */
  x0: Float32Array
  /** Standard normal noise z; null on the last step, which adds none. */
  noise: Float32Array | null
}

export interface AncestralStepParams {
  /** Classifier-free guidance scale w. */
  guidance: number
  /** Range x0 is clipped to (manifest.schedule.clipX0). */
  clipX0: readonly [number, number]
  coefficients: PosteriorCoefficients
}

/**
 * Stages 2-5 of a step (stage 1, predicting x0, is the model call):
 * 2. guidance x0 = uncond + w * (cond - uncond); 3. clip x0 (after guidance, which can leave the range);
 * 4. posterior mean; 5. add sqrt(variance) * z, except on the last step.
 *
 * @example
 * ancestralStep({ x, x0Cond, x0Uncond, x0, noise }, { guidance: 3, clipX0: [-1, 1], coefficients })
 */
export function ancestralStep(buffers: AncestralStepBuffers, params: AncestralStepParams): void {
  const { x, x0Cond, x0Uncond, x0, noise } = buffers
  const { guidance, clipX0, coefficients } = params
  const [clipLow, clipHigh] = clipX0
  const { posteriorMeanCoefX0, posteriorMeanCoefXt, posteriorVariance } = coefficients
  const posteriorStd = Math.sqrt(posteriorVariance)
  for (let i = 0; i < x.length; i++) {
    const cond = x0Cond[i] as number
    const guided = x0Uncond
      ? (x0Uncond[i] as number) + guidance * (cond - (x0Uncond[i] as number))
      : cond
    const clipped = Math.min(clipHigh, Math.max(clipLow, guided))
    x0[i] = clipped
    const mean = posteriorMeanCoefX0 * clipped + posteriorMeanCoefXt * (x[i] as number)
    x[i] = noise ? mean + posteriorStd * (noise[i] as number) : mean
  }
}
