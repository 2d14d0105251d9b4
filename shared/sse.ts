// Server-sent events framing (WHATWG HTML, "Server-sent events" section 9.2): the one writer both the
// gpu-service and the edge use, so the wire text is defined in one place.

export const SSE_CONTENT_TYPE = 'text/event-stream'

export interface SseMessage {
  /** The `event:` field; omitted means "message". */
  event?: string
  /** The `id:` field, which clients echo back as Last-Event-ID. */
  id?: string
  /** Serialized as JSON on one `data:` line (JSON never contains a raw newline). */
  data: unknown
  /** The `retry:` field in milliseconds. */
  retry?: number
}

/**
 * One SSE message as wire text, ending in the blank line that dispatches it.
 *
 * @example
 * formatSse({ event: 'step', id: '3', data: { step: 3 } }) // 'event: step\nid: 3\ndata: {"step":3}\n\n'
 */
export function formatSse(message: SseMessage): string {
  let text = ''
  if (message.event !== undefined) text += `event: ${singleLine('event', message.event)}\n`
  if (message.id !== undefined) text += `id: ${singleLine('id', message.id)}\n`
  if (message.retry !== undefined) text += `retry: ${message.retry}\n`
  return `${text}data: ${JSON.stringify(message.data)}\n\n`
}

/** A comment line: ignored by clients, keeps proxies from closing an idle stream. */
export const SSE_HEARTBEAT = ': heartbeat\n\n'

function singleLine(field: string, value: string): string {
  if (/[\r\n]/.test(value))
    throw new Error(`SSE ${field} must not contain a line break: ${JSON.stringify(value)}`)
  return value
}
