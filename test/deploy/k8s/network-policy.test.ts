// Who may reach the gpu-service pods. NetworkPolicy filters by port, not by path, and /v1/runs shares
// its port with /metrics and the probes, so the policy admits that one port from the ingress and the
// monitoring namespaces and nothing else; /v1 stays behind the HMAC signature (see network-policy.yaml).
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { beforeAll, describe, expect, it } from 'vitest'
import { gpuServiceDeployment, selects } from './helpers/manifests.ts'
import {
  KUSTOMIZE_ROOT,
  type RenderedObject,
  renderKustomization,
  theOnly,
} from './helpers/render.ts'

/** Namespaces as Kubernetes labels them (kubernetes.io/metadata.name, set on every namespace). */
const INGRESS_NAMESPACE = 'ingress-nginx'
const MONITORING_NAMESPACE = 'monitoring'

describe('the NetworkPolicy of deploy/k8s/base', () => {
  let objects: RenderedObject[]
  let policy: NetworkPolicy

  beforeAll(async () => {
    objects = await renderKustomization(`${KUSTOMIZE_ROOT}/base`)
    policy = new NetworkPolicy(theOnly(objects, NetworkPolicy.is))
  })

  it('applies to the gpu-service’s pods and governs their incoming connections', () => {
    const deployment = new Deployment(theOnly(objects, Deployment.is))
    expect(
      selects(policy.spec?.podSelector?.matchLabels, deployment.spec?.template.metadata?.labels),
    ).toBe(true)
    expect(policy.spec?.policyTypes).toContain('Ingress')
  })

  it('opens only the service’s port, the one /v1/runs and /metrics share', () => {
    const { container } = gpuServiceDeployment(objects)
    const port = container.ports?.[0]?.containerPort
    expect(policy.spec?.ingress?.map((rule) => rule.ports)).toEqual([[{ port, protocol: 'TCP' }]])
  })

  it(`admits only the ${INGRESS_NAMESPACE} and ${MONITORING_NAMESPACE} namespaces, no one else`, () => {
    const sources = policy.spec?.ingress?.flatMap((rule) => rule.from ?? [])
    expect(sources).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': INGRESS_NAMESPACE } } },
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': MONITORING_NAMESPACE } },
      },
    ])
    // A rule without `from` would admit every source.
    expect(policy.spec?.ingress?.every((rule) => (rule.from ?? []).length > 0)).toBe(true)
  })
})
