// Turns Zod validation issues into lines a person can act on: one `path: message` per issue.
import type { z } from 'zod'

/** One validation failure, located by a dotted path (`models.heavy.inputs[0].dtype`). */
export interface Issue {
  path: string
  message: string
}

/**
 * Flattens a ZodError into located issues; the root object's path is `(root)`.
 *
 * @example
 * const result = schema.safeParse(input)
 * if (!result.success) console.error(listIssues(result.error).map(formatIssue).join('\n'))
 */
export function listIssues(error: z.ZodError): Issue[] {
  return error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }))
}

/** `models.heavy.sha256: Invalid string` */
export function formatIssue(issue: Issue): string {
  return `${issue.path}: ${issue.message}`
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)'
  return path
    .map((key, index) => {
      if (typeof key === 'number') return `[${key}]`
      const name = String(key)
      return index === 0 ? name : `.${name}`
    })
    .join('')
}
