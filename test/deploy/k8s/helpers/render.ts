// Renders deploy/k8s with `kubectl kustomize` (no cluster involved) and parses the YAML stream into
// objects. kubectl comes from PATH: Debian's kubernetes-client in CI (.ci/run), whatever is installed
// elsewhere.
import { execFile } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import { parseAllDocuments } from 'yaml'

const execFileAsync = promisify(execFile)

export const KUSTOMIZE_ROOT = 'deploy/k8s'
/** The file the GPU overlay's secretGenerator reads; the operator writes it, git ignores it. */
export const HMAC_SECRET_FILE = 'overlays/gpu/hmac-secret.env'

/** What every rendered object has; the schema tests check the rest. */
export interface RenderedObject {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string> }
}

/**
 * The kubectl on PATH, or an error saying how to get one.
 *
 * @example
 * execFile(findKubectl(), ['kustomize', 'deploy/k8s/base'])
 */
export function findKubectl(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, 'kubectl')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  throw new Error(
    'kubectl not found on PATH: the deploy/k8s tests render the manifests with `kubectl kustomize` ' +
      '(on Debian: apt-get install kubernetes-client, which .ci/run installs)',
  )
}

/**
 * `kubectl kustomize <dir>`, parsed: one object per YAML document.
 *
 * @example
 * const objects = await renderKustomization('deploy/k8s/base')
 */
export async function renderKustomization(dir: string): Promise<RenderedObject[]> {
  const { stdout } = await execFileAsync(findKubectl(), ['kustomize', dir], {
    maxBuffer: 16 * 1024 * 1024,
  })
  return parseAllDocuments(stdout).map((document, index) => {
    if (document.errors.length > 0) {
      throw new Error(`document ${index} of ${dir}: ${document.errors[0]?.message}`)
    }
    return asRenderedObject(document.toJS(), `document ${index} of ${dir}`)
  })
}

/**
 * Renders the GPU overlay as an operator would, in a copy of deploy/k8s whose hmac-secret.env holds
 * `hmacSecret`, or is absent when `hmacSecret` is undefined. The working tree is never touched.
 *
 * @example
 * const objects = await renderGpuOverlay('test-secret-0123456789abcdef0123456789')
 */
export async function renderGpuOverlay(hmacSecret: string | undefined): Promise<RenderedObject[]> {
  const copy = await mkdtemp(join(tmpdir(), 'dualrate-k8s-'))
  try {
    await cp(KUSTOMIZE_ROOT, copy, { recursive: true })
    const secretFile = join(copy, HMAC_SECRET_FILE)
    await rm(secretFile, { force: true })
    if (hmacSecret !== undefined) {
      await writeFile(secretFile, `DUALRATE_HMAC_SECRET=${hmacSecret}\n`)
    }
    return await renderKustomization(join(copy, 'overlays/gpu'))
  } finally {
    await rm(copy, { recursive: true, force: true })
  }
}

/** `Kind/name` for messages and object lists. */
export function describeObject(object: RenderedObject): string {
  return `${object.kind}/${object.metadata.name}`
}

/**
 * The one object that `is` accepts, or an error naming how many there were.
 *
 * @example
 * const deployment = new Deployment(theOnly(objects, Deployment.is))
 */
export function theOnly<T>(objects: readonly unknown[], is: (value: unknown) => value is T): T {
  const found = allOf(objects, is)
  const [only] = found
  if (found.length !== 1 || only === undefined) {
    throw new Error(`expected exactly one such object, found ${found.length}`)
  }
  return only
}

/** The objects that `is` accepts, typed as it says. */
export function allOf<T>(objects: readonly unknown[], is: (value: unknown) => value is T): T[] {
  const found: T[] = []
  for (const object of objects) if (is(object)) found.push(object)
  return found
}

function asRenderedObject(value: unknown, where: string): RenderedObject {
  const object = value as Partial<RenderedObject> | null
  if (
    typeof object?.apiVersion !== 'string' ||
    typeof object.kind !== 'string' ||
    typeof object.metadata?.name !== 'string'
  ) {
    throw new Error(`${where} is not a Kubernetes object (apiVersion, kind, metadata.name)`)
  }
  return object as RenderedObject
}
