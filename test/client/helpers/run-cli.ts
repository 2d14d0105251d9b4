// Runs the `dual-rate` bin as a child process, as a user would, and collects what it printed.
import { spawn } from 'node:child_process'

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Starts `client/cli/main.ts` with `args`; `devDir` is its DUALRATE_DEV_DIR (where local.json lives).
 *
 * @example
 * const { finished } = runCli(['models'], { devDir })
 * expect((await finished).code).toBe(0)
 */
export function runCli(
  args: string[],
  { devDir, env = {} }: { devDir: string; env?: Record<string, string> },
) {
  const child = spawn(process.execPath, ['client/cli/main.ts', ...args], {
    env: { ...process.env, DUALRATE_DEV_DIR: devDir, NO_COLOR: '1', ...env },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const finished = new Promise<CliResult>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  )
  return { child, finished }
}

/** The validation problem the edge answers for `steps` above the limit. */
export const STEPS_TOO_BIG = {
  type: 'https://dual-rate.dev/problems/validation',
  status: 400,
  title: 'Invalid request',
  detail: '1 invalid field',
  errors: [{ field: 'steps', message: 'Too big: expected number to be <=1000' }],
}
