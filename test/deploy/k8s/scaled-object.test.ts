// Autoscaling the gpu-service with KEDA on its own Prometheus series: the ScaledObject drives the
// Deployment, its queries read metrics the service exports from the pods Prometheus may scrape, and it
// scales up at once and down slowly.
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject'
import type { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import type { IContainer } from 'kubernetes-models/v1/Container'
import { beforeAll, describe, expect, it } from 'vitest'
import { healthRoutes } from '../../../gpu-service/src/http/routes/health.ts'
import { parseServiceConfig } from '../../../gpu-service/src/service/config.ts'
import { createServiceMetrics } from '../../../gpu-service/src/service/metrics.ts'
import {
  environmentOf,
  gpuServiceDeployment,
  metricNamesIn,
  namespaceMatchersIn,
} from './helpers/manifests.ts'
import {
  KUSTOMIZE_ROOT,
  type RenderedObject,
  renderKustomization,
  theOnly,
} from './helpers/render.ts'

/** Scaling down: never sooner than this after the load fell (a GPU pod takes minutes to start). */
const MIN_SCALE_DOWN_WINDOW_SECONDS = 300

describe('the KEDA ScaledObject of deploy/k8s/base', () => {
  let objects: RenderedObject[]
  let scaledObject: ScaledObject
  let deployment: Deployment
  let container: IContainer

  beforeAll(async () => {
    objects = await renderKustomization(`${KUSTOMIZE_ROOT}/base`)
    scaledObject = new ScaledObject(theOnly(objects, ScaledObject.is))
    ;({ deployment, container } = gpuServiceDeployment(objects))
  })

  const triggers = () => scaledObject.spec.triggers
  const queries = () => triggers().map((trigger) => trigger.metadata.query ?? '')

  it('scales the gpu-service Deployment in its own namespace', () => {
    expect(scaledObject.spec.scaleTargetRef).toMatchObject({
      kind: 'Deployment',
      name: deployment.metadata?.name,
    })
    expect(scaledObject.metadata?.namespace).toBe(deployment.metadata?.namespace)
  })

  it('asks Prometheus only for series gpu-service/src/service/metrics.ts exports', () => {
    const exported = createServiceMetrics()
      .registry.getMetricsAsArray()
      .map((metric) => metric.name)
    expect(triggers().map((trigger) => trigger.type)).toEqual(['prometheus', 'prometheus'])
    const queried = queries().flatMap(metricNamesIn)
    expect(queried).toEqual(
      expect.arrayContaining([
        'dualrate_active_runs',
        'dualrate_queue_depth',
        'dualrate_active_rows',
        'dualrate_queued_rows',
        'dualrate_capacity_rows',
      ]),
    )
    expect(queried.filter((name) => !exported.includes(name))).toEqual([])
  })

  it('reads the series of the Deployment’s namespace only', () => {
    for (const query of queries()) {
      expect(namespaceMatchersIn(query)).toEqual(
        metricNamesIn(query).map(() => deployment.metadata?.namespace),
      )
    }
  })

  it('asks the Prometheus in the namespace the NetworkPolicy lets scrape the pods', () => {
    const policy = new NetworkPolicy(theOnly(objects, NetworkPolicy.is))
    const scrapers = policy.spec?.ingress?.flatMap((rule) =>
      (rule.from ?? []).map(
        (peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'],
      ),
    )
    for (const trigger of triggers()) {
      const [, namespace] = new URL(trigger.metadata.serverAddress ?? '').hostname.split('.')
      expect(scrapers).toContain(namespace)
    }
  })

  it('has the pods scraped where the service serves /metrics', async () => {
    const annotations = deployment.spec?.template.metadata?.annotations ?? {}
    expect(annotations['prometheus.io/scrape']).toBe('true')
    expect(Number(annotations['prometheus.io/port'])).toBe(container.ports?.[0]?.containerPort)
    const routes = healthRoutes({
      readiness: { ready: true, draining: false },
      metrics: createServiceMetrics(),
    })
    const response = await routes.request(annotations['prometheus.io/path'] ?? '')
    expect(response.status).toBe(200)
    expect(await response.text()).toContain('dualrate_queue_depth')
  })

  it('targets fewer runs in flight per replica than a replica admits at once', () => {
    const { maxActiveRuns } = parseServiceConfig(
      environmentOf(container, () => 'x'.repeat(32)),
    ).scheduler
    const inFlight = triggers().find((trigger) =>
      metricNamesIn(trigger.metadata.query ?? '').includes('dualrate_active_runs'),
    )
    expect(inFlight?.metricType).toBe('AverageValue')
    expect(Number(inFlight?.metadata.threshold)).toBeGreaterThan(0)
    expect(Number(inFlight?.metadata.threshold)).toBeLessThan(maxActiveRuns)
  })

  it('holds the rows in use and waiting below the rows the replicas may step at once', () => {
    const rows = triggers().find((trigger) =>
      metricNamesIn(trigger.metadata.query ?? '').includes('dualrate_capacity_rows'),
    )
    // A ratio of the whole fleet: Value, not AverageValue (which divides by replicas).
    expect(rows?.metricType).toBe('Value')
    expect(Number(rows?.metadata.threshold)).toBeGreaterThan(0)
    expect(Number(rows?.metadata.threshold)).toBeLessThan(1)
  })

  it('keeps more replicas than the PodDisruptionBudget may take down at once', () => {
    const budget = new PodDisruptionBudget(theOnly(objects, PodDisruptionBudget.is))
    const { minReplicaCount = 0, maxReplicaCount = 0 } = scaledObject.spec
    expect(minReplicaCount).toBeGreaterThan(Number(budget.spec?.maxUnavailable))
    expect(maxReplicaCount).toBeGreaterThan(minReplicaCount)
  })

  it(`scales up at once and down only after ${MIN_SCALE_DOWN_WINDOW_SECONDS} s of lower load`, () => {
    const behavior = scaledObject.spec.advanced?.horizontalPodAutoscalerConfig?.behavior
    expect(behavior?.scaleUp?.stabilizationWindowSeconds).toBe(0)
    expect(behavior?.scaleDown?.stabilizationWindowSeconds).toBeGreaterThanOrEqual(
      MIN_SCALE_DOWN_WINDOW_SECONDS,
    )
    const podsPerPeriod = (
      policies: { type: string; value: number; periodSeconds: number }[] = [],
    ) =>
      Math.max(
        ...policies
          .filter((policy) => policy.type === 'Pods')
          .map((p) => p.value / p.periodSeconds),
      )
    expect(podsPerPeriod(behavior?.scaleUp?.policies)).toBeGreaterThan(
      podsPerPeriod(behavior?.scaleDown?.policies),
    )
  })
})
