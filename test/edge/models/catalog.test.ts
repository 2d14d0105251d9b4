// The edge's model catalog: every committed manifest bundled (a new model folder cannot be forgotten),
// the default first, and each model described as GET /v1/models shows it.
import { describe, expect, it } from 'vitest'
import {
  BUNDLED_MANIFESTS,
  buildCatalog,
  bundledCatalog,
} from '../../../edge/src/models/catalog.ts'
import defaultManifest from '../../../gpu-service/models/manifest.json' with { type: 'json' }
import { STUDENT_MODEL_ID, studentManifest, twoModelCatalog } from '../helpers/model-catalog.ts'

// Vite lists the files matching the pattern when it transforms this test, from the disk as it is now.
const committed = Object.keys(
  import.meta.glob([
    '../../../gpu-service/models/manifest.json',
    '../../../gpu-service/models/*/manifest.json',
  ]),
)

describe('the bundled catalog', () => {
  it('bundles exactly the manifest.json files committed under gpu-service/models', () => {
    const folderOf = (path: string) =>
      path.replace(/^.*gpu-service\/models\//, '').replace(/\/?manifest\.json$/, '')
    expect(committed.map(folderOf).sort()).toEqual(
      BUNDLED_MANIFESTS.map((entry) => entry.folder).sort(),
    )
  })

  it('has the root manifest as its default model, listed first', () => {
    expect(bundledCatalog.defaultModel.id).toBe(defaultManifest.modelId)
    expect(bundledCatalog.models[0]).toBe(bundledCatalog.defaultModel)
    expect(bundledCatalog.models.filter((model) => model.default)).toHaveLength(1)
  })
})

describe('buildCatalog', () => {
  it('describes a distilled model with its supports, teacher, defaults and cost per image', () => {
    const student = twoModelCatalog.find(STUDENT_MODEL_ID)
    const { heavy, light } = defaultManifest.models
    expect(student).toMatchObject({
      id: STUDENT_MODEL_ID,
      default: false,
      description: studentManifest.description,
      teacherModelId: defaultManifest.modelId,
      supports: studentManifest.supports,
      defaults: { count: 1, steps: 8, heavySchedule: { every: 2 }, guidance: 1, previewEvery: 0 },
      // Heavy at steps 0, 2, 4, 6 and light at all 8, one row per image (guidance 1).
      cost: { macsPerImage: 4 * heavy.macsPerCall + 8 * light.macsPerCall },
    })
    expect(twoModelCatalog.models.map((model) => [model.id, model.default])).toEqual([
      [defaultManifest.modelId, true],
      [STUDENT_MODEL_ID, false],
    ])
  })

  it('defaults to the calibrated placement, and prices it, when the manifest recommends a number of calls', () => {
    const placements = defaultManifest.heavyPlacements['50']
    const recommended = { ...defaultManifest.recommended, heavyCalls: 5 }
    const catalog = buildCatalog([{ folder: '', manifest: { ...defaultManifest, recommended } }])
    const { heavy, light } = defaultManifest.models
    expect(placements[4]).toHaveLength(5)
    expect(catalog.defaultModel).toMatchObject({
      defaults: { steps: 50, heavySchedule: { calls: 5 } },
      cost: { macsPerImage: 5 * heavy.macsPerCall + 50 * light.macsPerCall },
    })
  })

  it('refuses a catalog without a default manifest, or with one model twice', () => {
    expect(() => buildCatalog([{ folder: 'a', manifest: studentManifest }])).toThrow(
      "expected one default manifest (folder ''), got 0",
    )
    expect(() =>
      buildCatalog([
        { folder: '', manifest: defaultManifest },
        { folder: 'copy', manifest: defaultManifest },
      ]),
    ).toThrow(`model ${defaultManifest.modelId} is bundled twice`)
  })

  it('names the folder of an invalid manifest', () => {
    const broken = { ...studentManifest, recommended: { steps: 50, heavyEvery: 8, guidance: 1 } }
    expect(() =>
      buildCatalog([
        { folder: '', manifest: defaultManifest },
        { folder: 'mmd-8step', manifest: broken },
      ]),
    ).toThrow(
      /^gpu-service\/models\/mmd-8step\/manifest\.json: Invalid model manifest:\n {2}recommended: not supported: this model samples with 8 steps only/,
    )
  })
})
