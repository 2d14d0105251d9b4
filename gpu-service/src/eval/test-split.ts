// What every quality measurement compares against: the evaluator's view of the Fashion-MNIST test split
// (its Gaussian feature statistics are the FD reference; its labels check the evaluator itself), and the
// sampler seeds the published reports score on, which nothing may be tuned against.
import type { Evaluator } from './classifier.ts'
import { loadFashionMnist } from './fashion-mnist.ts'
import { type GaussianStats, gaussianStats } from './frechet-distance.ts'

/**
 * The seeds `npm run eval` and `npm run frontier` report on. A choice made from samples (calibration's
 * validation, a checkpoint pick) uses other seeds (the project's validation seed is 100), so that the
 * reports stay an unbiased check of it.
 */
export const TEST_SEEDS: readonly number[] = [0, 1, 2]

export interface TestSplitScores {
  /** Mean and covariance of the evaluator's features of the test images: what FD is measured against. */
  reference: GaussianStats
  /** The evaluator's accuracy on the test labels (a check that its features mean something). */
  classifierAccuracy: number
  featureDim: number
  /** Test images scored. */
  count: number
}

/**
 * Scores the test split with the evaluator once: the FD reference and the evaluator's own accuracy.
 *
 * @example
 * const { reference } = await scoreTestSplit(evaluator)
 * await measureSchedules(pair.models, manifest, evaluator, reference, schedules, settings, console.log)
 */
export async function scoreTestSplit(evaluator: Evaluator): Promise<TestSplitScores> {
  const test = await loadFashionMnist('test')
  const scores = await evaluator.classify(test.images, test.count)
  let correct = 0
  for (let i = 0; i < test.count; i++) if (scores.predictions[i] === test.labels[i]) correct++
  return {
    reference: gaussianStats(scores.features, scores.featureDim),
    classifierAccuracy: correct / test.count,
    featureDim: scores.featureDim,
    count: test.count,
  }
}
