// Process-level failures: through a fake process for the wiring, and in a child process for the real one.
import { spawnSync } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { jsonLogger } from '../../../gpu-service/src/service/logger.ts'
import { EXIT_SOFTWARE, logProcessErrors } from '../../../gpu-service/src/service/process-errors.ts'

function fakeProcess() {
  const events = new EventEmitter()
  const exits: number[] = []
  return {
    events,
    exits,
    target: Object.assign(events, { exit: (code: number) => exits.push(code) }),
  }
}

describe('logProcessErrors', () => {
  it('logs an unhandled rejection as an error line and keeps the process running', () => {
    const lines: Record<string, unknown>[] = []
    const { events, exits, target } = fakeProcess()
    logProcessErrors(
      jsonLogger((line) => lines.push(JSON.parse(line))),
      target,
    )
    events.emit('unhandledRejection', new Error('nobody awaited this'))
    events.emit('unhandledRejection', 'a bare string')
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'unhandled rejection',
        error: expect.objectContaining({ name: 'Error', message: 'nobody awaited this' }),
      }),
      expect.objectContaining({
        level: 'error',
        msg: 'unhandled rejection',
        error: 'a bare string',
      }),
    ])
    expect(exits).toEqual([])
  })

  it('logs an uncaught exception, then exits 70', () => {
    const lines: Record<string, unknown>[] = []
    const { events, exits, target } = fakeProcess()
    logProcessErrors(
      jsonLogger((line) => lines.push(JSON.parse(line))),
      target,
    )
    events.emit('uncaughtException', new TypeError('x is undefined'), 'uncaughtException')
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'uncaught exception',
        origin: 'uncaughtException',
        error: expect.objectContaining({ name: 'TypeError', message: 'x is undefined' }),
      }),
    ])
    expect(exits).toEqual([EXIT_SOFTWARE])
  })

  it('in a real process: the rejection is logged and survived, the exception logged and fatal', () => {
    const script = `
      const { jsonLogger } = await import('./gpu-service/src/service/logger.ts')
      const { logProcessErrors } = await import('./gpu-service/src/service/process-errors.ts')
      logProcessErrors(jsonLogger())
      Promise.reject(new Error('nobody awaited this'))
      setTimeout(() => { throw new Error('boom') }, 50)
      setTimeout(() => console.log('still running'), 10_000)
    `
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(child.status).toBe(EXIT_SOFTWARE)
    const lines = child.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(lines.map((line) => [line.level, line.msg, line.error.message])).toEqual([
      ['error', 'unhandled rejection', 'nobody awaited this'],
      ['error', 'uncaught exception', 'boom'],
    ])
    expect(child.stderr).toBe('')
  })
})
