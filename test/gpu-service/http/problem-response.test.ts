import { Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { requestId } from 'hono/request-id'
import { describe, expect, it } from 'vitest'
import { problemErrorHandler } from '../../../gpu-service/src/http/problem-response.ts'
import { jsonLogger } from '../../../gpu-service/src/service/logger.ts'

function appThrowing(error: unknown) {
  const lines: Record<string, unknown>[] = []
  const app = new Hono()
  app.use(requestId())
  app.get('/boom', () => {
    throw error
  })
  app.onError(problemErrorHandler(jsonLogger((line) => lines.push(JSON.parse(line)))))
  return { app, lines }
}

describe('problemErrorHandler', () => {
  it('answers an unknown error with a generic 500 and logs it with the request id', async () => {
    const { app, lines } = appThrowing(new Error('secret detail: /etc/dualrate'))
    const response = await app.request('/boom', { headers: { 'x-request-id': 'req-9' } })
    expect(response.status).toBe(500)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    expect(await response.json()).toEqual({
      type: 'about:blank',
      status: 500,
      title: 'Internal Server Error',
      requestId: 'req-9',
    })
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({
      level: 'error',
      msg: 'unhandled error',
      requestId: 'req-9',
      method: 'GET',
      path: '/boom',
      error: { name: 'Error', message: 'secret detail: /etc/dualrate' },
    })
  })

  it('keeps the status and message of an HTTPException', async () => {
    const { app, lines } = appThrowing(new HTTPException(400, { message: 'Malformed JSON' }))
    const response = await app.request('/boom')
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({
      status: 400,
      title: 'Bad Request',
      detail: 'Malformed JSON',
    })
    expect(lines).toEqual([])
  })
})
