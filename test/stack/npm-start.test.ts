// `npm start` as a new user meets it: what it prints and writes, and a second start on a taken port.
// (Ctrl-C stopping both processes is checked when the project's stack is torn down: global-setup.ts.)
import { spawn } from 'node:child_process'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, inject, it } from 'vitest'
import { freePort } from '../../edge/scripts/local-stack.ts'

const stack = inject('stack')

describe('npm start', () => {
  it('prints the playground URL carrying the key in its fragment, the API base, the key and a curl example', () => {
    const output = stack.startOutput
    expect(output).toContain(
      `Playground   ${stack.apiBase}/#key=${stack.apiKey}   (saves the key in your browser)`,
    )
    expect(output).toContain(`API base     ${stack.apiBase}   (routes under /v1;`)
    expect(output).toContain(`API key      ${stack.apiKey}   (new; both saved in ${stack.devDir}`)
    expect(output).toContain(
      `curl -s ${stack.apiBase}/v1/generations -H "authorization: Bearer ${stack.apiKey}"`,
    )
  })

  it('writes .dev/local.json readable by its owner only', async () => {
    const { mode } = await stat(join(stack.devDir, 'local.json'))
    expect(mode & 0o777).toBe(0o600)
  })

  it('prefixes each line of both logs, the gpu-service JSON made readable', () => {
    const lines = stack.startOutput.split('\n')
    expect(
      lines.some((line) => /^gpu-service │ \d\d:\d\d:\d\d info {2}ready modelId=/.test(line)),
    ).toBe(true)
    expect(lines.some((line) => /^edge {8}│ .*Ready on http:\/\/127\.0\.0\.1:/.test(line))).toBe(
      true,
    )
    expect(lines.filter((line) => line.startsWith('gpu-service │ {'))).toEqual([])
  })

  it('runs the printed curl example', async () => {
    const body = /-d '(\{.*\})'$/m.exec(stack.startOutput)?.[1] ?? ''
    expect(JSON.parse(body)).toEqual({ class: 'Sneaker', heavySchedule: { every: 4 }, seed: 7 })
    const response = await fetch(`${stack.apiBase}/v1/generations`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stack.apiKey}`,
        'content-type': 'application/json',
        prefer: 'wait=60',
      },
      body,
    })
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({
      status: 'succeeded',
      request: { className: 'Sneaker', heavySchedule: { every: 4 }, seed: 7 },
    })
  })

  it('refuses a port in use with a message naming it and the flag to change it', async () => {
    const child = spawn(
      process.execPath,
      [
        'edge/scripts/start.ts',
        `--edge-port=${stack.edgePort}`,
        `--gpu-service-port=${await freePort()}`,
      ],
      { env: { ...process.env, NO_COLOR: '1' } },
    )
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const code = await new Promise((resolve) => child.once('exit', resolve))
    expect(code).toBe(1)
    expect(stderr).toContain(
      `npm start: port ${stack.edgePort} (edge) is already in use on 127.0.0.1.`,
    )
    expect(stderr).toContain(`npm start -- --edge-port ${stack.edgePort + 10}`)
  })
})
