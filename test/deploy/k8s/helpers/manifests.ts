// Reading the rendered manifests against the gpu-service's code: schema validation per kind, the pod's
// environment as the service will see it, the variables config.ts reads, and the series a PromQL query
// names.
import { readFileSync } from 'node:fs'
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import type { IContainer } from 'kubernetes-models/v1/Container'
import { Namespace } from 'kubernetes-models/v1/Namespace'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { allOf, describeObject, type RenderedObject, theOnly } from './render.ts'

/** The gpu-service's container in the Deployment's pod template. */
export const CONTAINER_NAME = 'gpu-service'

/**
 * Validates `object` against the Kubernetes (or KEDA) schema of its kind; throws with the first
 * violation, or when no schema here knows the kind.
 *
 * @example
 * for (const object of await renderKustomization('deploy/k8s/base')) validateAgainstSchema(object)
 */
export function validateAgainstSchema(object: RenderedObject): void {
  modelOf(object).validate()
}

/** `object` as the kubernetes-models class of its kind, which carries that kind's schema. */
function modelOf(object: RenderedObject): { validate(): void } {
  if (Namespace.is(object)) return new Namespace(object)
  if (Secret.is(object)) return new Secret(object)
  if (Service.is(object)) return new Service(object)
  if (Deployment.is(object)) return new Deployment(object)
  if (PodDisruptionBudget.is(object)) return new PodDisruptionBudget(object)
  if (NetworkPolicy.is(object)) return new NetworkPolicy(object)
  if (ScaledObject.is(object)) return new ScaledObject(object)
  throw new Error(`no schema for ${object.apiVersion} ${describeObject(object)}`)
}

/** The one Deployment and its gpu-service container. */
export function gpuServiceDeployment(objects: readonly RenderedObject[]): {
  deployment: Deployment
  container: IContainer
} {
  const deployment = new Deployment(theOnly(objects, Deployment.is))
  const container = deployment.spec?.template.spec?.containers.find(
    (candidate) => candidate.name === CONTAINER_NAME,
  )
  if (container === undefined) throw new Error(`no container named ${CONTAINER_NAME}`)
  return { deployment, container }
}

/** A value from a Secret the pod references: where it comes from is up to the caller. */
export type SecretLookup = (secretName: string, key: string) => string

/**
 * The container's environment as the process sees it: plain values as written, secretKeyRef values
 * through `lookUpSecret`. Any other source (fieldRef, configMapKeyRef) is an error: the service reads
 * none.
 */
export function environmentOf(
  container: IContainer,
  lookUpSecret: SecretLookup,
): Record<string, string> {
  const environment: Record<string, string> = {}
  for (const variable of container.env ?? []) {
    const secretRef = variable.valueFrom?.secretKeyRef
    if (variable.value !== undefined) environment[variable.name] = variable.value
    else if (secretRef !== undefined) {
      environment[variable.name] = lookUpSecret(secretRef.name ?? '', secretRef.key)
    } else throw new Error(`${variable.name} has a source the service's environment cannot use`)
  }
  return environment
}

/**
 * Looks values up in the rendered Secrets, decoded; an error when the Secret or its key is missing.
 *
 * @example
 * environmentOf(container, secretsIn(objects))
 */
export function secretsIn(objects: readonly RenderedObject[]): SecretLookup {
  const secrets = allOf(objects, Secret.is)
  return (secretName, key) => {
    const secret = secrets.find((candidate) => candidate.metadata?.name === secretName)
    if (secret === undefined) throw new Error(`no Secret named ${secretName} is rendered`)
    const encoded = secret.data?.[key]
    if (encoded === undefined) throw new Error(`Secret ${secretName} has no key ${key}`)
    // Kubernetes decodes Secret data ignoring line breaks; kustomize v5 wraps long values.
    return Buffer.from(encoded.replace(/\s/g, ''), 'base64').toString('utf8')
  }
}

/**
 * The environment variables gpu-service/src/service/config.ts's Zod schemas read. config.ts exports no
 * list, so they are read from its source: the CONSTANT_CASE keys of its schema objects.
 */
export function serviceVariables(): Set<string> {
  const source = readFileSync('gpu-service/src/service/config.ts', 'utf8')
  return new Set(
    Array.from(source.matchAll(/^ {2}([A-Z][A-Z0-9_]*): /gm), (match) => match[1] ?? ''),
  )
}

/** Metric names a PromQL query selects (`name{...}`). */
export function metricNamesIn(query: string): string[] {
  return Array.from(query.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g), (match) => match[1] ?? '')
}

/** The values of a PromQL query's `namespace="..."` matchers. */
export function namespaceMatchersIn(query: string): string[] {
  return Array.from(query.matchAll(/\bnamespace\s*=\s*"([^"]*)"/g), (match) => match[1] ?? '')
}

/** Whether every label a selector requires is on `labels`. */
export function selects(
  matchLabels: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  const required = Object.entries(matchLabels ?? {})
  return required.length > 0 && required.every(([key, value]) => labels?.[key] === value)
}
