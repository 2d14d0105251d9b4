// What a benchmark report says about where it ran: CPU, Node, the ONNX device, the code's commit.
import { execFileSync } from 'node:child_process'
import { cpus } from 'node:os'
import type { ServiceConfig } from '../service/config.ts'

/**
 * @example
 * machineDescription(config) // '2 x AMD EPYC, Node 24.21.0, onnxruntime-node cpu'
 */
export function machineDescription(config: Pick<ServiceConfig, 'session'>): string {
  const { device, intraOpThreads } = config.session
  return (
    `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}, ` +
    `onnxruntime-node ${device}` +
    (intraOpThreads ? `, ${intraOpThreads} intra-op threads` : '')
  )
}

/** The commit the benchmark ran at (with "+changes" when the tree differs from it), or "unknown". */
export function gitRevision(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
    }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'gpu-service/src'], {
      encoding: 'utf8',
    }).trim()
    return dirty ? `${commit}+changes` : commit
  } catch {
    return 'unknown'
  }
}
