// `npx dual-rate` as a user types it: the npx on the PATH (the system's npm, on whatever Node the machine
// has: Node 20 on this project's machines), not this project's node_modules/.bin. npm reads the project's
// .npmrc and engines field before it runs the bin; it must have nothing to say about either.
import { spawn, spawnSync } from 'node:child_process'
import { delimiter } from 'node:path'
import { describe, expect, it } from 'vitest'

/** The test runner's environment as a shell would have it: no npm run variables, no node_modules/.bin. */
const userEnv: Record<string, string | undefined> = {
  ...Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')),
  ),
  PATH: (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => !dir.includes('node_modules'))
    .join(delimiter),
  // npm's weekly "new version available" notice is about npm, not this project.
  npm_config_update_notifier: 'false',
}
const systemNode = spawnSync('node', ['--version'], { env: userEnv, encoding: 'utf8' })
const systemNpx = spawnSync('npx', ['--version'], { env: userEnv, encoding: 'utf8' })

describe('npx dual-rate', () => {
  it.skipIf(systemNpx.status !== 0)(
    `prints only the CLI's own output (system Node ${systemNode.stdout.trim()}, npm ${systemNpx.stdout.trim()})`,
    async () => {
      const child = spawn('npx', ['dual-rate', '--help'], { env: userEnv })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (chunk) => (stdout += chunk))
      child.stderr.on('data', (chunk) => (stderr += chunk))
      const code = await new Promise((resolve) => child.once('close', resolve))
      const direct = spawnSync(process.execPath, ['client/cli/main.ts', '--help'], {
        encoding: 'utf8',
      })
      expect({ code, stderr, stdout }).toEqual({ code: 0, stderr: '', stdout: direct.stdout })
      expect(stdout).toMatch(/^usage: dual-rate <command> \[options\]\n/)
    },
  )
})
