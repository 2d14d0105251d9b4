// `npm run bench` as a child process, for what it does before measuring anything: its command line.
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { USAGE } from '../../../gpu-service/src/bench/args.ts'

function runBench(args: string[]) {
  const child = spawnSync(process.execPath, ['gpu-service/src/cli/bench.ts', ...args], {
    encoding: 'utf8',
  })
  return { status: child.status, stdout: child.stdout, stderr: child.stderr }
}

describe('npm run bench', () => {
  it('prints the usage and one line naming an unknown flag, and exits 64', () => {
    expect(runBench(['--bogus'])).toEqual({
      status: 64,
      stdout: '',
      stderr: `bench: Unknown option '--bogus'\n\n${USAGE}\n`,
    })
  })

  it('prints the usage and one line naming a bad value, and exits 64', () => {
    expect(runBench(['--repeats', 'many'])).toEqual({
      status: 64,
      stdout: '',
      stderr: `bench: --repeats: expected a whole number\n\n${USAGE}\n`,
    })
  })

  it('prints the usage on --help and exits 0', () => {
    expect(runBench(['--help'])).toEqual({ status: 0, stdout: `${USAGE}\n`, stderr: '' })
  })
})
