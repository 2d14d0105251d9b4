// The model the edge serves, read from the committed manifest at build time. Bundling it (rather than
// fetching it from a backend) keeps GET /v1/models and request defaults free of backend calls and
// available while every backend is down; the job checks that a backend runs this very model id before it
// caches a result under it, so a backend on another model fails over instead of poisoning the cache.
import manifestJson from '../../../gpu-service/models/manifest.json' with { type: 'json' }
import type { Model } from '../../../shared/generation-api.ts'
import { type Manifest, parseManifest } from '../../../shared/model-manifest.ts'
import { macsPerImage } from '../../../shared/model-support.ts'
import { MAX_COUNT, MAX_GUIDANCE, MAX_SEED, MAX_STEPS } from '../../../shared/sampling-options.ts'

export const manifest: Manifest = parseManifest(manifestJson)

/** The public description of the model (GET /v1/models) and the defaults a request falls back to. */
export const model: Model = {
  id: manifest.modelId,
  default: true,
  image: manifest.image,
  classes: manifest.classes.map((name, index) => ({ index, name })),
  defaults: {
    count: 1,
    steps: manifest.recommended.steps,
    heavySchedule: { every: manifest.recommended.heavyEvery },
    guidance: manifest.recommended.guidance,
    previewEvery: 0,
  },
  limits: {
    maxCount: MAX_COUNT,
    maxSteps: MAX_STEPS,
    maxGuidance: MAX_GUIDANCE,
    maxSeed: MAX_SEED,
  },
  cost: {
    heavyMacsPerRow: manifest.models.heavy.macsPerCall,
    lightMacsPerRow: manifest.models.light.macsPerCall,
    macsPerImage: macsPerImage(
      {
        heavyMacsPerRow: manifest.models.heavy.macsPerCall,
        lightMacsPerRow: manifest.models.light.macsPerCall,
      },
      {
        steps: manifest.recommended.steps,
        heavySchedule: { every: manifest.recommended.heavyEvery },
        guidance: manifest.recommended.guidance,
      },
    ),
  },
}
