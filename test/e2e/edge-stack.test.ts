// End to end on loopback: wrangler dev (the edge worker with local Durable Objects, R2 and KV) in front
// of a real gpu-service running the committed models, with an API key made by the key script.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { decode } from 'fast-png'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalStack, startLocalStack } from '../../edge/scripts/local-stack.ts'

let stack: LocalStack

beforeAll(async () => {
  stack = await startLocalStack()
}, 240_000)
afterAll(async () => {
  await stack?.stop()
})

async function readEvents(response: Response) {
  const events: { id?: string | undefined; event?: string | undefined; data: unknown }[] = []
  const messages = (response.body as ReadableStream<Uint8Array>)
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream())
  for await (const message of messages) {
    events.push({ id: message.id, event: message.event, data: JSON.parse(message.data) })
  }
  return events
}

async function runsStarted(): Promise<number> {
  const text = await (await fetch(`${stack.backendUrl}/metrics`)).text()
  return text
    .split('\n')
    .filter((line) => line.startsWith('dualrate_runs_total'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
}

describe('edge + gpu-service on loopback', () => {
  const body = {
    class: 'Sneaker',
    steps: 12,
    heavySchedule: { every: 4 },
    seed: 2026,
    previewEvery: 6,
  }

  it('runs a generation: submit, stream SSE to the end, fetch and decode the PNG', async () => {
    const authorization = `Bearer ${stack.apiKey}`
    const created = await fetch(`${stack.edgeUrl}/v1/generations`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    expect(created.status).toBe(202)
    const job = (await created.json()) as { id: string; urls: { events: string } }

    const stream = await fetch(job.urls.events, { headers: { authorization } })
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const events = await readEvents(stream)
    const names = events.map((event) => event.event)
    expect(names[0]).toBe('queued')
    expect(names.at(-1)).toBe('succeeded')
    expect(names.filter((name) => name === 'step')).toHaveLength(12)
    // Previews at steps 6 and 12; a subscriber that arrives after both gets only the latest from the
    // history (each preview supersedes the last), so one or two, ending with the last step's.
    const previews = events.filter((event) => event.event === 'preview')
    expect(previews.length === 1 || previews.length === 2).toBe(true)
    expect((previews.at(-1)?.data as { step: number } | undefined)?.step).toBe(11)
    const steps = events.filter((event) => event.event === 'step').map((event) => event.data)
    expect(steps.map((step) => (step as { heavy: boolean }).heavy)).toEqual(
      Array.from({ length: 12 }, (_, index) => index % 4 === 0),
    )
    // Ids count every event appended, so they rise by one except where a superseded preview was left out.
    const ids = events.map((event) => Number(event.id))
    expect(ids[0]).toBe(1)
    expect(ids.at(-1)).toBe(events.length + 2 - previews.length)
    expect(ids.every((id, index) => index === 0 || id > (ids[index - 1] ?? 0))).toBe(true)

    const succeeded = events.at(-1)?.data as { images: string[] } | undefined
    const imageUrl = succeeded?.images[0]
    if (!imageUrl) throw new Error('succeeded without an image URL')
    const png = await fetch(imageUrl)
    expect(png.status).toBe(200)
    expect(png.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    const image = decode(new Uint8Array(await png.arrayBuffer()))
    expect({ width: image.width, height: image.height, channels: image.channels }).toEqual({
      width: 28,
      height: 28,
      channels: 1,
    })
    const revalidated = await fetch(imageUrl, {
      headers: { 'if-none-match': png.headers.get('etag') ?? '' },
    })
    expect(revalidated.status).toBe(304)
  }, 120_000)

  it('serves the same request again from cache: 200 at once, no new run on the gpu-service', async () => {
    const before = await runsStarted()
    const again = await fetch(`${stack.edgeUrl}/v1/generations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    expect(again.status).toBe(200)
    expect(((await again.json()) as { status: string }).status).toBe('succeeded')
    expect(await runsStarted()).toBe(before)
    expect(before).toBeGreaterThan(0)
  })

  it('refuses a webhook URL on loopback under wrangler dev too (no opt-in by default), sending nothing', async () => {
    const refused = await fetch(`${stack.edgeUrl}/v1/generations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' },
      // Port 9 (discard): were it ever fetched, nothing would answer; it never is.
      body: JSON.stringify({ ...body, seed: 2027, webhookUrl: 'http://127.0.0.1:9/hook' }),
    })
    expect(refused.status).toBe(400)
    const problem = (await refused.json()) as { errors: { field: string; message: string }[] }
    expect(problem.errors).toEqual([
      { field: 'webhookUrl', message: 'must not point to a loopback address' },
    ])
  })

  it('refuses a key after `npm run keys -- revoke` on the same local state', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      'node_modules/tsx/dist/cli.mjs',
      'edge/scripts/keys.ts',
      'revoke',
      '--name=local-stack',
      `--persist-to=${stack.statePath}`,
    ])
    expect(stdout).toContain('revoked 1 key(s) named "local-stack"')
    const refused = await fetch(`${stack.edgeUrl}/v1/generations/${'0'.repeat(64)}`, {
      headers: { authorization: `Bearer ${stack.apiKey}` },
    })
    expect(refused.status).toBe(401)
  })
})
