// A CPU cap for one process group of the local fleet: a Linux control group with a CFS quota
// (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), so the capped gpu-service behaves like a smaller
// machine. Fewer ONNX Runtime threads cannot do that on a shared box: the other processes' idle
// cycles still go to it. Needs a writable cgroup cpu controller (root, or a delegated subtree); when
// there is none it throws, naming the path it tried, rather than running the fleet even.
import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** The scheduler period the quota is a share of (the kernel's default, 100 ms). */
const PERIOD_US = 100_000

/** A capped group; `release` removes the control group once its processes have ended. */
export interface CpuLimit {
  path: string
  cores: number
  /** Moves processes into the group (threads and later children follow). */
  add(pids: number[]): Promise<void>
  release(): Promise<void>
}

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, 2)
    return true
  } catch {
    return false
  }
}

/** Where a new cpu control group can be made: the v2 root with the cpu controller, or the v1 cpu tree. */
async function cpuHierarchy(): Promise<{ root: string; version: 1 | 2 }> {
  const unified = '/sys/fs/cgroup'
  try {
    const controllers = await readFile(join(unified, 'cgroup.controllers'), 'utf8')
    if (controllers.split(/\s+/).includes('cpu') && (await writable(unified))) {
      return { root: unified, version: 2 }
    }
  } catch {
    // Not a v2 root; look for the v1 cpu controller.
  }
  const legacy = join(unified, 'cpu')
  if (await writable(join(legacy, 'cgroup.procs'))) return { root: legacy, version: 1 }
  throw new Error(
    `no writable cgroup cpu controller (tried ${unified} with cpu in cgroup.controllers, and ${legacy}): ` +
      'a CPU limit needs root or a delegated cgroup',
  )
}

/**
 * Makes a control group that lets its processes use at most `cores` CPUs' worth of time.
 *
 * @example
 * const limit = await createCpuLimit('dualrate-sim-gpu-service-3', 0.25)
 * await limit.add([backend.pid])
 * // ... the run ...
 * await limit.release() // after the processes have exited
 */
export async function createCpuLimit(name: string, cores: number): Promise<CpuLimit> {
  if (!(cores > 0) || cores > 1024) throw new RangeError(`cores must be above 0, got ${cores}`)
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`a cgroup name takes [a-z0-9-], not ${name}`)
  const { root, version } = await cpuHierarchy()
  const path = join(root, name)
  await mkdir(path, { recursive: true })
  const quotaUs = Math.max(1000, Math.round(cores * PERIOD_US))
  if (version === 2) {
    await writeFile(join(path, 'cpu.max'), `${quotaUs} ${PERIOD_US}`)
  } else {
    await writeFile(join(path, 'cpu.cfs_period_us'), String(PERIOD_US))
    await writeFile(join(path, 'cpu.cfs_quota_us'), String(quotaUs))
  }
  return {
    path,
    cores,
    async add(pids) {
      // One pid per write: the kernel takes a single pid per write to cgroup.procs.
      for (const pid of pids) await writeFile(join(path, 'cgroup.procs'), String(pid))
    },
    async release() {
      // The group can only be removed once empty; a stopped stack may take a moment to reap.
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          await rmdir(path)
          return
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
      console.error(`cpu-limit: could not remove ${path}; remove it once its processes have ended`)
    },
  }
}
