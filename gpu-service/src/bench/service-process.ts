// A fresh `npm run gpu-service` process per measurement: its own ONNX sessions and thread pools (two
// services in one process were measured to slow each other unevenly), stopped with SIGTERM afterwards.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { RunClient } from '../cli/run-client.ts'

const MAIN = 'gpu-service/src/service/main.ts'

/**
 * Starts the service with `env` on top of this process's environment (on a free port, with `secret`),
 * waits until it is ready, runs `measure` against it and stops it.
 *
 * @example
 * const timing = await withServiceProcess({ DUALRATE_BATCHING: 'off' }, secret, (client) =>
 *   timedRun(client, request))
 */
export async function withServiceProcess<T>(
  env: Record<string, string>,
  secret: string,
  measure: (client: RunClient) => Promise<T>,
): Promise<T> {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, PORT: '0', DUALRATE_HMAC_SECRET: secret, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let listening = ''
      // Read every log line (an unread pipe would block the service); the url comes before ready.
      createInterface({ input: child.stdout }).on('line', (line) => {
        const entry = JSON.parse(line) as { msg: string; url?: string }
        if (entry.msg === 'listening') listening = entry.url ?? ''
        if (entry.msg === 'ready') resolve(listening)
      })
      void exited.then((code) => reject(new Error(`gpu-service exited with ${code} before ready`)))
    })
    return await measure({ baseUrl: url, secret })
  } finally {
    child.kill('SIGTERM')
    await exited
  }
}
