// The models the edge serves, read from the committed manifests at build time: gpu-service/models/
// manifest.json is the default model, and each folder beside it with a manifest.json is another one (a
// distilled few-step student, say). Bundling them (rather than asking a backend) keeps GET /v1/models and
// request defaults free of backend calls and available while every backend is down; the job checks that
// a backend runs the very model id a request resolved to before it caches a result under it, so a backend
// on another model fails over instead of poisoning the cache.
import defaultManifest from '../../../gpu-service/models/manifest.json' with { type: 'json' }
import mmd4StepManifest from '../../../gpu-service/models/mmd-4step/manifest.json' with {
  type: 'json',
}
import mmd8StepManifest from '../../../gpu-service/models/mmd-8step/manifest.json' with {
  type: 'json',
}
import type { Model } from '../../../shared/generation-api.ts'
import { type Manifest, parseManifest, recommendedOptions } from '../../../shared/model-manifest.ts'
import { calibratedStepCounts, macsPerImage } from '../../../shared/model-support.ts'
import { MAX_COUNT, MAX_GUIDANCE, MAX_SEED, MAX_STEPS } from '../../../shared/sampling-options.ts'

/** A committed manifest and the folder of gpu-service/models it lives in ('' for the default model). */
export interface BundledManifest {
  folder: string
  manifest: unknown
}

/**
 * Every committed manifest: one line per model folder (import its manifest.json above). The catalog's
 * test fails when a folder of gpu-service/models holding a manifest.json is missing here.
 */
export const BUNDLED_MANIFESTS: readonly BundledManifest[] = [
  { folder: '', manifest: defaultManifest },
  { folder: 'mmd-8step', manifest: mmd8StepManifest },
  { folder: 'mmd-4step', manifest: mmd4StepManifest },
]

/** The models a request may name: every one listed, the default first. */
export interface ModelCatalog {
  /** The default model first, then the others in the order they were given. */
  readonly models: readonly Model[]
  /** The model of a request without `model`. */
  readonly defaultModel: Model
  /** The model with this id, if the catalog has it. */
  find(id: string): Model | undefined
}

/**
 * The catalog of these manifests: each validated (an invalid one fails the build's first request, not a
 * caller's), the one in folder '' the default.
 *
 * @example
 * const catalog = buildCatalog([{ folder: '', manifest }, { folder: 'mmd-8step', manifest: student }])
 * catalog.find('dualrate-547fb728e629')?.defaults.steps // 50
 */
export function buildCatalog(bundled: readonly BundledManifest[]): ModelCatalog {
  const defaults = bundled.filter((entry) => entry.folder === '')
  if (defaults.length !== 1) {
    throw new Error(`expected one default manifest (folder ''), got ${defaults.length}`)
  }
  const ordered = [...defaults, ...bundled.filter((entry) => entry.folder !== '')]
  const models = ordered.map((entry) => {
    try {
      return describeModel(parseManifest(entry.manifest), entry.folder === '')
    } catch (error) {
      const where = `gpu-service/models/${entry.folder ? `${entry.folder}/` : ''}manifest.json`
      throw new Error(`${where}: ${(error as Error).message}`)
    }
  })
  const byId = new Map<string, Model>()
  for (const model of models) {
    if (byId.has(model.id)) throw new Error(`model ${model.id} is bundled twice`)
    byId.set(model.id, model)
  }
  const [defaultModel] = models as [Model, ...Model[]]
  return { models, defaultModel, find: (id) => byId.get(id) }
}

/**
 * The public description of one model (GET /v1/models): its classes, the defaults a request falls back
 * to (the manifest's recommended setting), the limits, what it supports and what an image costs.
 *
 * @example
 * describeModel(parseManifest(json), true).cost.macsPerImage
 */
export function describeModel(manifest: Manifest, isDefault: boolean): Model {
  const { steps, heavySchedule, guidance } = recommendedOptions(manifest)
  const rowCost = {
    heavyMacsPerRow: manifest.models.heavy.macsPerCall,
    lightMacsPerRow: manifest.models.light.macsPerCall,
  }
  return {
    id: manifest.modelId,
    default: isDefault,
    ...(manifest.description !== undefined && { description: manifest.description }),
    ...(manifest.teacherModelId !== undefined && { teacherModelId: manifest.teacherModelId }),
    ...(manifest.supports !== undefined && { supports: manifest.supports }),
    ...(manifest.heavyPlacements !== undefined && {
      calibratedSteps: calibratedStepCounts(manifest.heavyPlacements),
    }),
    image: manifest.image,
    classes: manifest.classes.map((name, index) => ({ index, name })),
    defaults: { count: 1, steps, heavySchedule, guidance, previewEvery: 0 },
    limits: {
      maxCount: MAX_COUNT,
      maxSteps: MAX_STEPS,
      maxGuidance: MAX_GUIDANCE,
      maxSeed: MAX_SEED,
    },
    cost: {
      ...rowCost,
      macsPerImage: macsPerImage(
        rowCost,
        { steps, heavySchedule, guidance },
        manifest.heavyPlacements,
      ),
    },
  }
}

/** The catalog of the committed manifests. */
export const bundledCatalog: ModelCatalog = buildCatalog(BUNDLED_MANIFESTS)

let served: ModelCatalog = bundledCatalog

/** The catalog requests are resolved against and GET /v1/models lists. */
export function servedCatalog(): ModelCatalog {
  return served
}

/**
 * Serves another catalog from now on (tests: a fixture with a distilled model beside the default);
 * returns the function that restores the one served before.
 *
 * @example
 * const restore = serveCatalog(buildCatalog([{ folder: '', manifest }, { folder: 'student', manifest: student }]))
 * afterEach(restore)
 */
export function serveCatalog(catalog: ModelCatalog): () => void {
  const previous = served
  served = catalog
  return () => {
    served = previous
  }
}
