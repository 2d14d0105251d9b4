// A human-readable API reference rendered from the OpenAPI document on the server: plain HTML, no
// scripts or third-party assets, so it works offline and under a strict Content-Security-Policy.
type Json = unknown
interface Operation {
  summary?: string
  description?: string
  security?: unknown[]
  parameters?: { name: string; in: string; required?: boolean; schema?: Json }[]
  requestBody?: { content?: Record<string, { schema?: Json }> }
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Json }> }>
}
interface Document {
  info: { title: string; version: string; description?: string }
  paths?: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, Json> }
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
const code = (value: Json) => `<pre>${escapeHtml(JSON.stringify(value, null, 2))}</pre>`
const inline = (text: string) => escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>')

function renderOperation(method: string, path: string, operation: Operation): string {
  const parameters = (operation.parameters ?? [])
    .map(
      (parameter) =>
        `<li><code>${escapeHtml(parameter.name)}</code> (${escapeHtml(parameter.in)}${parameter.required ? ', required' : ''})</li>`,
    )
    .join('')
  const body = Object.entries(operation.requestBody?.content ?? {})
    .map(([type, media]) => `<h4>Body <code>${escapeHtml(type)}</code></h4>${code(media.schema)}`)
    .join('')
  const responses = Object.entries(operation.responses ?? {})
    .map(([status, response]) => {
      const types = Object.keys(response.content ?? {}).map(
        (type) => `<code>${escapeHtml(type)}</code>`,
      )
      return `<li><strong>${escapeHtml(status)}</strong> ${inline(response.description ?? '')} ${types.join(' ')}</li>`
    })
    .join('')
  const anchor = `${method}-${path}`.replace(/[^a-z0-9]+/gi, '-')
  return `<section id="${anchor}">
<h3><span class="method">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h3>
<p>${inline(operation.summary ?? '')}${operation.security?.length ? ' <em>(API key)</em>' : ''}</p>
${operation.description ? `<p>${inline(operation.description)}</p>` : ''}
${parameters ? `<h4>Parameters</h4><ul>${parameters}</ul>` : ''}${body}
<h4>Responses</h4><ul>${responses}</ul></section>`
}

/**
 * The reference page for an OpenAPI 3.1 document.
 *
 * @example
 * c.html(renderReferencePage(app.getOpenAPI31Document(info)))
 */
export function renderReferencePage(openapi: object): string {
  const document = openapi as Document
  const operations = Object.entries(document.paths ?? {}).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => renderOperation(method, path, operation)),
  )
  const schemas = Object.entries(document.components?.schemas ?? {})
    .map(
      ([name, schema]) =>
        `<section id="schema-${escapeHtml(name)}"><h3>${escapeHtml(name)}</h3>${code(schema)}</section>`,
    )
    .join('')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(document.info.title)} reference</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
pre{background:#f5f5f5;padding:.75rem;overflow:auto;font-size:13px}section{border-top:1px solid #ddd}
.method{font-family:monospace;background:#222;color:#fff;padding:0 .4rem;border-radius:3px}</style></head>
<body><h1>${escapeHtml(document.info.title)} <small>${escapeHtml(document.info.version)}</small></h1>
<p>${inline(document.info.description ?? '')}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<h2>Operations</h2>${operations.join('\n')}
<h2>Schemas</h2>${schemas}</body></html>`
}
