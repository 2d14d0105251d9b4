// What every gpu-service measuring tool (eval, drift, calibrate, frontier) does with its command line:
// flags parsed by node:util and checked by a zod schema, each problem named by its flag; and one entry
// point that prints a usage error with the usage text (exit 64) and anything else with its stack (exit 1).
import { type ParseArgsConfig, parseArgs } from 'node:util'
import type { z } from 'zod'
import { EXIT_USAGE, UsageError } from './usage-error.ts'

const camel = (flag: string) =>
  flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase())
const kebab = (key: string) => key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)

/**
 * Parses `argv` against `options` (kebab-case flags become camelCase keys) and validates the values
 * with `schema`. Throws a UsageError with one `--flag: why` line per problem.
 *
 * @example
 * const args = parseFlags(argv, { 'samples-per-class': { type: 'string' } }, argsSchema)
 * args.samplesPerClass
 */
export function parseFlags<Schema extends z.ZodType>(
  argv: string[],
  options: NonNullable<ParseArgsConfig['options']>,
  schema: Schema,
): z.infer<Schema> {
  let values: Record<string, unknown>
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (error) {
    // node:util's message for an unknown flag, a stray argument or a missing value: its first sentence.
    const [sentence] = (error as Error).message.split(/\.(?:\s|$)/)
    throw new UsageError(sentence as string)
  }
  const renamed = Object.fromEntries(
    Object.entries(values).map(([flag, value]) => [camel(flag), value]),
  )
  const parsed = schema.safeParse(renamed)
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (issue) => `--${kebab(String(issue.path[0] ?? ''))}: ${issue.message}`,
    )
    throw new UsageError(lines.join('\n'))
  }
  return parsed.data
}

/**
 * Runs a tool's main. A UsageError prints `tool: message` and the usage, exit 64 (EX_USAGE); any
 * other failure its stack, exit 1.
 *
 * @example
 * runCli('frontier', USAGE, () => main(process.argv.slice(2)))
 */
export function runCli(tool: string, usage: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`${tool}: ${error.message.replaceAll('\n', `\n${tool}: `)}\n\n${usage}`)
      process.exitCode = EXIT_USAGE
      return
    }
    console.error(`${tool}: ${error instanceof Error ? (error.stack ?? error.message) : error}`)
    process.exitCode = 1
  })
}
