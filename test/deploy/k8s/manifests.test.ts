// deploy/k8s as kubectl renders it: which objects, valid against the Kubernetes and KEDA schemas, in one
// namespace, selecting the gpu-service's pods, and the HMAC Secret only where the operator provides it.
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  gpuServiceDeployment,
  secretsIn,
  selects,
  validateAgainstSchema,
} from './helpers/manifests.ts'
import {
  allOf,
  describeObject,
  HMAC_SECRET_FILE,
  KUSTOMIZE_ROOT,
  type RenderedObject,
  renderGpuOverlay,
  renderKustomization,
  theOnly,
} from './helpers/render.ts'

const TEST_HMAC_SECRET = 'test-hmac-secret-0123456789abcdef0123456789abcdef'
const NAMESPACE = 'dualrate'
const NAME = 'dualrate-gpu-service'
const HMAC_SECRET_NAME = 'dualrate-gpu-service-hmac'

const renders: Record<'base' | 'overlays/gpu', RenderedObject[]> = { base: [], 'overlays/gpu': [] }

beforeAll(async () => {
  renders.base = await renderKustomization(`${KUSTOMIZE_ROOT}/base`)
  renders['overlays/gpu'] = await renderGpuOverlay(TEST_HMAC_SECRET)
})

describe('kubectl kustomize deploy/k8s/base', () => {
  it('renders the namespace and the gpu-service with its Service, PDB, NetworkPolicy and ScaledObject', () => {
    expect(renders.base.map(describeObject).sort()).toEqual(
      [
        `Namespace/${NAMESPACE}`,
        `Deployment/${NAME}`,
        `Service/${NAME}`,
        `PodDisruptionBudget/${NAME}`,
        `NetworkPolicy/${NAME}`,
        `ScaledObject/${NAME}`,
      ].sort(),
    )
  })

  it('ships no Secret: the HMAC secret is the operator’s', () => {
    expect(allOf(renders.base, Secret.is)).toEqual([])
  })
})

describe('kubectl kustomize deploy/k8s/overlays/gpu', () => {
  it('renders the base and the HMAC Secret generated from the operator’s file', () => {
    expect(renders['overlays/gpu'].map(describeObject).sort()).toEqual(
      [...renders.base.map(describeObject), `Secret/${HMAC_SECRET_NAME}`].sort(),
    )
  })

  it(`refuses to render without ${HMAC_SECRET_FILE}, naming the file`, async () => {
    await expect(renderGpuOverlay(undefined)).rejects.toThrow(/hmac-secret\.env/)
  })

  it('gives the pod the secret the operator wrote, under the name and key the Deployment reads', () => {
    const { container } = gpuServiceDeployment(renders['overlays/gpu'])
    const reference = container.env?.find((variable) => variable.name === 'DUALRATE_HMAC_SECRET')
      ?.valueFrom?.secretKeyRef
    expect(reference).toEqual({ name: HMAC_SECRET_NAME, key: 'DUALRATE_HMAC_SECRET' })
    expect(secretsIn(renders['overlays/gpu'])(HMAC_SECRET_NAME, 'DUALRATE_HMAC_SECRET')).toBe(
      TEST_HMAC_SECRET,
    )
  })
})

describe.each(['base', 'overlays/gpu'] as const)('the objects of deploy/k8s/%s', (dir) => {
  it('are valid against the Kubernetes and KEDA schemas of their kinds', () => {
    const problems = renders[dir].flatMap((object) => {
      try {
        validateAgainstSchema(object)
        return []
      } catch (error) {
        return [`${describeObject(object)}: ${(error as Error).message}`]
      }
    })
    expect(problems).toEqual([])
  })

  it(`all live in the namespace ${NAMESPACE}`, () => {
    const namespaced = renders[dir].filter((object) => object.kind !== 'Namespace')
    expect(namespaced.map((object) => [describeObject(object), object.metadata.namespace])).toEqual(
      namespaced.map((object) => [describeObject(object), NAMESPACE]),
    )
  })

  it('select exactly the gpu-service’s pods: Deployment, Service and PodDisruptionBudget', () => {
    const deployment = new Deployment(theOnly(renders[dir], Deployment.is))
    const podLabels = deployment.spec?.template.metadata?.labels
    const service = new Service(theOnly(renders[dir], Service.is))
    const budget = new PodDisruptionBudget(theOnly(renders[dir], PodDisruptionBudget.is))
    expect(selects(deployment.spec?.selector.matchLabels, podLabels)).toBe(true)
    expect(selects(service.spec?.selector, podLabels)).toBe(true)
    expect(selects(budget.spec?.selector?.matchLabels, podLabels)).toBe(true)
  })

  it('route the Service to the container’s port', () => {
    const { container } = gpuServiceDeployment(renders[dir])
    const service = new Service(theOnly(renders[dir], Service.is))
    const containerPort = container.ports?.[0]
    expect(container.ports).toHaveLength(1)
    expect(service.spec?.ports?.map((port) => port.targetPort)).toEqual([containerPort?.name])
  })
})
