// A catalog with a second model for tests: the committed default model and a fixture 8-step student
// distilled from it (its manifest is the default's with the student's id, `supports` and recommended
// setting), as a gpu-service/models/<folder>/manifest.json of a distilled model would declare them.
import { afterEach, beforeEach } from 'vitest'
import { buildCatalog, type ModelCatalog, serveCatalog } from '../../../edge/src/models/catalog.ts'
import defaultManifest from '../../../gpu-service/models/manifest.json' with { type: 'json' }

export const DEFAULT_MODEL_ID = defaultManifest.modelId
export const STUDENT_MODEL_ID = 'dualrate-a8a8a8a8a8a8'

/** The student's manifest: 8 steps, heavy every 2 steps or once, guidance 1 (one row per image). */
const { heavyPlacements: _teacherPlacements, ...teacherManifest } = defaultManifest
export const studentManifest = {
  // A student has no calibrated placements of its own: it runs the placements it was distilled for.
  ...teacherManifest,
  modelId: STUDENT_MODEL_ID,
  description: 'Fixture 8-step student: 8 steps, heavy every 2 or once, guidance 1.',
  teacherModelId: DEFAULT_MODEL_ID,
  recommended: { steps: 8, heavyEvery: 2, guidance: 1 },
  supports: { steps: [8], heavySteps: { '8': [[0, 2, 4, 6], [0]] }, guidance: [1] },
}

/** The default model and the student, in that order. */
export const twoModelCatalog: ModelCatalog = buildCatalog([
  { folder: '', manifest: defaultManifest },
  { folder: 'fixture-8step', manifest: studentManifest },
])

/**
 * Serves the two-model catalog during each test of the file (the worker shares the test isolate, so
 * its routes see it), and the bundled one again after.
 *
 * @example
 * useTwoModelCatalog()
 * it('…', async () => { await postGeneration(authorization, { class: 1, model: STUDENT_MODEL_ID }) })
 */
export function useTwoModelCatalog(): void {
  let restore: (() => void) | undefined
  beforeEach(() => {
    restore = serveCatalog(twoModelCatalog)
  })
  afterEach(() => restore?.())
}
