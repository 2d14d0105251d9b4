// `npm run keys` as a person types it: --help, and the wrong command lines it must refuse with one line
// saying why, the usage and exit 64 (EX_USAGE), never a stack trace. None of these reach the KV state,
// so no wrangler dev runs.
import { execFile } from 'node:child_process'
import { describe, expect, it } from 'vitest'

interface Outcome {
  code: number | null
  stdout: string
  stderr: string
}

function keys(...args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['node_modules/tsx/dist/cli.mjs', 'edge/scripts/keys.ts', ...args],
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0
        resolve({ code, stdout, stderr })
      },
    )
  })
}

describe('npm run keys', () => {
  it.each(['--help', '-h'])('prints the usage for %s and exits 0', async (flag) => {
    const { code, stdout, stderr } = await keys(flag)
    expect(code).toBe(0)
    expect(stderr).toBe('')
    expect(stdout).toMatch(/^usage:\n {2}npm run keys -- create --name NAME/)
    expect(stdout).toContain('npm run keys -- revoke --name NAME')
    expect(stdout).toContain('--persist-to DIR  the local state folder of wrangler dev')
  })

  it.each([
    [['create', '--name', 'dev', '--bogus'], 'npm run keys: unknown option --bogus'],
    [['list', '-x'], 'npm run keys: unknown option -x'],
    [['create', '--name'], "npm run keys: Option '--name <value>' argument missing"],
    [
      ['create', '--name', 'dev', '--rpm', 'abc'],
      'npm run keys: --rpm must be a whole number of at least 1, not "abc"',
    ],
    [
      ['create', '--name', 'dev', '--concurrent', '0'],
      'npm run keys: --concurrent must be a whole number of at least 1, not "0"',
    ],
    [['create'], 'npm run keys: create needs --name NAME'],
    [[], 'npm run keys: a command is required: create, revoke or list'],
    [['rotate'], 'npm run keys: unknown command "rotate"'],
  ])('refuses %j with one line, the usage and exit 64', async (args, line) => {
    const { code, stdout, stderr } = await keys(...args)
    expect(code).toBe(64)
    expect(stdout).toBe('')
    const [first, blank, usage] = stderr.split('\n')
    expect(first).toBe(line)
    expect(blank).toBe('')
    expect(usage).toBe('usage:')
    expect(stderr).not.toMatch(/^\s+at /m)
  })
})
