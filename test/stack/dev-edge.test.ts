// `npm run dev:edge` (edge/README.md) starts wrangler dev without reaching out to Cloudflare for a
// `Request.cf` object: on a machine without internet that fetch printed a DNS error on every start.
// Runs the documented command on free loopback ports with a temporary state folder.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { freePort } from '../../edge/scripts/local-stack.ts'
import { signalGroup, stopGroup } from '../../edge/scripts/process-group.ts'

it('npm run dev:edge serves the API without fetching Request.cf', async () => {
  const port = await freePort()
  const state = await mkdtemp(join(tmpdir(), 'dualrate-dev-edge-'))
  const child = spawn(
    'npm',
    [
      'run',
      'dev:edge',
      '--',
      '--ip=127.0.0.1',
      `--port=${port}`,
      `--inspector-port=${await freePort()}`,
      `--persist-to=${state}`,
      '--show-interactive-dev-session=false',
    ],
    { detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } },
  )
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  try {
    const deadline = Date.now() + 90_000
    while (!output.includes(`Ready on http://127.0.0.1:${port}`)) {
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`wrangler dev did not start:\n${output.slice(-3000)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const models = await fetch(`http://127.0.0.1:${port}/v1/models`)
    expect(models.status).toBe(200)
    expect(output).toContain('.dev.vars written')
    expect(output).not.toContain('Unable to fetch the `Request.cf` object')
    expect(output).not.toContain('workers.cloudflare.com')
  } finally {
    if (child.pid !== undefined) signalGroup(child.pid, 'SIGTERM')
    await stopGroup(child)
    await rm(state, { recursive: true, force: true })
  }
}, 120_000)
