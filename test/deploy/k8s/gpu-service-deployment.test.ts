// The gpu-service's pod spec against the service's own code: the environment is one config.ts accepts and
// knows, the port is the one it listens on, the probes are its routes and answer as the kubelet needs,
// the termination grace covers its drain, and the pod runs as the image's user with nothing writable
// but scratch space.
import { readFileSync } from 'node:fs'
import type { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import type { IContainer } from 'kubernetes-models/v1/Container'
import { beforeAll, describe, expect, it } from 'vitest'
import { healthRoutes, type Readiness } from '../../../gpu-service/src/http/routes/health.ts'
import {
  DEFAULT_PORT,
  parseServiceConfig,
  resolveHmacSecret,
} from '../../../gpu-service/src/service/config.ts'
import { createServiceMetrics } from '../../../gpu-service/src/service/metrics.ts'
import {
  environmentOf,
  gpuServiceDeployment,
  type SecretLookup,
  secretsIn,
  serviceVariables,
} from './helpers/manifests.ts'
import { KUSTOMIZE_ROOT, renderGpuOverlay, renderKustomization } from './helpers/render.ts'

const TEST_HMAC_SECRET = 'test-hmac-secret-0123456789abcdef0123456789abcdef'
/**
 * After the drain grace the service still flushes its streams and closes its listener (up to 1 s each,
 * start.ts CLOSE_WAIT_MS), releases the ONNX sessions and exits; the kubelet's SIGKILL must come later.
 */
const DRAIN_MARGIN_MS = 10_000
/** Model loading and warm-up: seconds on CPU, but a CUDA session's first start can take minutes. */
const MIN_STARTUP_SECONDS = 180

/** The base ships no Secret; its pods would get theirs from an overlay, as overlays/gpu does. */
const baseSecretStandIn: SecretLookup = () => TEST_HMAC_SECRET

const layouts = [
  { dir: 'base', render: () => renderKustomization(`${KUSTOMIZE_ROOT}/base`), secrets: null },
  { dir: 'overlays/gpu', render: () => renderGpuOverlay(TEST_HMAC_SECRET), secrets: 'rendered' },
] as const

describe.each(layouts)('the gpu-service pod of deploy/k8s/$dir', ({ render, secrets }) => {
  let deployment: Deployment
  let container: IContainer
  let environment: Record<string, string>

  beforeAll(async () => {
    const objects = await render()
    ;({ deployment, container } = gpuServiceDeployment(objects))
    environment = environmentOf(
      container,
      secrets === null ? baseSecretStandIn : secretsIn(objects),
    )
  })

  const podSpec = () => deployment.spec?.template.spec
  const serviceConfig = () => parseServiceConfig(environment)

  it('sets only variables that gpu-service/src/service/config.ts reads', () => {
    const known = serviceVariables()
    expect(known).toContain('DUALRATE_DRAIN_GRACE_MS')
    expect(Object.keys(environment).filter((name) => !known.has(name))).toEqual([])
  })

  it('has an environment the service accepts, in production mode', () => {
    expect(serviceConfig().production).toBe(true)
  })

  it('listens on every interface, on the default port, which is the container port', () => {
    const [port] = container.ports ?? []
    expect(port?.containerPort).toBe(DEFAULT_PORT)
    expect(serviceConfig().host).toBe('0.0.0.0')
    expect(serviceConfig().port).toBe(port?.containerPort)
  })

  it('probes the container port on routes gpu-service/src/http/routes/health.ts serves', () => {
    const probes = [container.startupProbe, container.readinessProbe, container.livenessProbe]
    expect(probes.map((probe) => probe?.httpGet?.port)).toEqual(
      Array(3).fill(container.ports?.[0]?.name),
    )
    expect(probes.map((probe) => probe?.httpGet?.path)).toEqual(['/readyz', '/readyz', '/healthz'])
  })

  it('is live while loading and draining, ready only once warm and not draining', async () => {
    const readiness: Readiness = { ready: false, draining: false }
    const routes = healthRoutes({ readiness, metrics: createServiceMetrics() })
    const statuses = async () => ({
      live: (await routes.request(container.livenessProbe?.httpGet?.path ?? '')).status,
      ready: (await routes.request(container.readinessProbe?.httpGet?.path ?? '')).status,
      started: (await routes.request(container.startupProbe?.httpGet?.path ?? '')).status,
    })
    expect(await statuses()).toEqual({ live: 200, ready: 503, started: 503 })
    readiness.ready = true
    expect(await statuses()).toEqual({ live: 200, ready: 200, started: 200 })
    readiness.draining = true
    expect(await statuses()).toEqual({ live: 200, ready: 503, started: 503 })
  })

  it(`allows at least ${MIN_STARTUP_SECONDS} s for model loading and warm-up before a restart`, () => {
    const probe = container.startupProbe
    expect((probe?.periodSeconds ?? 10) * (probe?.failureThreshold ?? 3)).toBeGreaterThanOrEqual(
      MIN_STARTUP_SECONDS,
    )
  })

  it(`waits for the SIGTERM drain plus ${DRAIN_MARGIN_MS / 1000} s before killing the pod`, () => {
    const graceSeconds = podSpec()?.terminationGracePeriodSeconds ?? 30
    expect(graceSeconds * 1000).toBeGreaterThanOrEqual(
      serviceConfig().drainGraceMs + DRAIN_MARGIN_MS,
    )
  })

  it('runs as the image’s non-root user (gpu-service/Dockerfile USER)', () => {
    const dockerfile = readFileSync('gpu-service/Dockerfile', 'utf8')
    const [, uid, gid] = dockerfile.match(/^USER (\d+):(\d+)$/m) ?? []
    expect(podSpec()?.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: Number(uid),
      runAsGroup: Number(gid),
    })
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    })
  })

  it('has a read-only root filesystem, writable emptyDir scratch only, and no dev secret file to write', async () => {
    expect(container.securityContext?.readOnlyRootFilesystem).toBe(true)
    const emptyDirs = (podSpec()?.volumes ?? []).filter((volume) => volume.emptyDir !== undefined)
    expect(container.volumeMounts?.map((mount) => mount.name)).toEqual(
      emptyDirs.map((volume) => volume.name),
    )
    // Outside production the service would write `<devDir>/hmac-secret`; here it takes the environment's.
    const devDir = '/nonexistent/read-only/.dev'
    expect(await resolveHmacSecret({ ...serviceConfig(), devDir })).toEqual({
      secret: TEST_HMAC_SECRET,
      source: 'env',
    })
  })

  it('requests and limits CPU and memory, and ONNX Runtime’s threads fit the CPU limit', () => {
    const { requests, limits } = container.resources ?? {}
    expect(Object.keys(requests ?? {})).toEqual(expect.arrayContaining(['cpu', 'memory']))
    expect(Object.keys(limits ?? {})).toEqual(expect.arrayContaining(['cpu', 'memory']))
    const threads = serviceConfig().session.intraOpThreads
    expect(threads).toBeDefined()
    expect(threads).toBeLessThanOrEqual(Number(limits?.cpu))
  })
})

describe('the GPU overlay (deploy/k8s/overlays/gpu)', () => {
  let container: IContainer
  let baseContainer: IContainer

  beforeAll(async () => {
    ;({ container } = gpuServiceDeployment(await renderGpuOverlay(TEST_HMAC_SECRET)))
    ;({ container: baseContainer } = gpuServiceDeployment(
      await renderKustomization(`${KUSTOMIZE_ROOT}/base`),
    ))
  })

  it('gives each pod one NVIDIA GPU; the base asks for none', () => {
    expect(container.resources?.limits?.['nvidia.com/gpu']).toBe(1)
    expect(baseContainer.resources?.limits?.['nvidia.com/gpu']).toBeUndefined()
  })

  it('runs the CUDA image on the CUDA execution provider', () => {
    expect(container.image).toMatch(/:cuda$/)
    const environment = environmentOf(container, () => TEST_HMAC_SECRET)
    expect(parseServiceConfig(environment).session.device).toBe('cuda')
  })
})
