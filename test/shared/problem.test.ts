import { describe, expect, it } from 'vitest'
import { problem, problemSchema } from '../../shared/problem.ts'

describe('problem (RFC 9457)', () => {
  it('defaults type to about:blank and keeps extension members', () => {
    expect(
      problem({
        status: 400,
        title: 'Invalid request',
        detail: 'guidance: Too big',
        extensions: { errors: [{ path: 'guidance', message: 'Too big' }] },
      }),
    ).toEqual({
      type: 'about:blank',
      status: 400,
      title: 'Invalid request',
      detail: 'guidance: Too big',
      errors: [{ path: 'guidance', message: 'Too big' }],
    })
  })

  it('lets standard members win over extensions of the same name', () => {
    expect(problem({ status: 404, title: 'Not found', extensions: { status: 200 } }).status).toBe(
      404,
    )
  })

  it('rejects a status outside 100..599', () => {
    expect(() => problem({ status: 600, title: 'Nope' })).toThrow(/status/)
  })

  it('parses a problem received from another service', () => {
    const received = problemSchema.parse({ status: 500, title: 'Internal error', requestId: 'r1' })
    expect(received).toEqual({
      type: 'about:blank',
      status: 500,
      title: 'Internal error',
      requestId: 'r1',
    })
  })
})
