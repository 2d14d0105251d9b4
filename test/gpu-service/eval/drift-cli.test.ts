// `npm run drift` as a child process, for its command line: what it does before loading any model.
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'

function runDrift(args: string[]) {
  const child = spawnSync(process.execPath, ['gpu-service/src/cli/drift.ts', ...args], {
    encoding: 'utf8',
  })
  return { status: child.status, stdout: child.stdout, stderr: child.stderr }
}

describe('npm run drift', () => {
  it('prints one line naming a bad value, then the usage, and exits 64', () => {
    const { status, stdout, stderr } = runDrift(['--k', '2,0'])
    expect({ status, stdout }).toEqual({ status: 64, stdout: '' })
    expect(stderr).toMatch(/^drift: --k: expected K >= 1\n\nusage: npm run drift -- \[options\]\n/)
  })

  it('names an unknown flag and exits 64', () => {
    const { status, stderr } = runDrift(['--trajectory', '8'])
    expect(status).toBe(64)
    expect(stderr).toMatch(/^drift: Unknown option '--trajectory'\n\nusage: npm run drift/)
  })
})
