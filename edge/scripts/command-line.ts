// The command line of an `npm run` script: parsed with node:util's parseArgs, `--help` printing the usage,
// and a wrong command line answered with one line saying why, the usage, and exit 64 (EX_USAGE), never a
// stack trace.
import { type ParseArgsConfig, parseArgs } from 'node:util'

/** sysexits.h EX_USAGE: the command line was wrong. */
export const EX_USAGE = 64

/** A script's name as its users type it (`npm run keys`) and its usage text. */
export interface Script {
  name: string
  usage: string
}

/** Prints one line saying what is wrong, then the usage, and exits with EX_USAGE. */
export function usageError(script: Script, message: string): never {
  console.error(`${script.name}: ${message}\n\n${script.usage}`)
  process.exit(EX_USAGE)
}

/**
 * parseArgs, with an unknown option or a missing value turned into a usage error.
 *
 * @example
 * const { values } = parseCommandLine(script, { options: { out: { type: 'string' } } })
 */
export function parseCommandLine<const T extends ParseArgsConfig>(script: Script, config: T) {
  try {
    return parseArgs(config)
  } catch (error) {
    // parseArgs throws a TypeError with an ERR_PARSE_ARGS_* code for an unknown option or a missing value.
    const code = (error as NodeJS.ErrnoException).code ?? ''
    if (!code.startsWith('ERR_PARSE_ARGS_')) throw error
    const unknown = /^Unknown option '([^']+)'/.exec((error as Error).message)?.[1]
    usageError(script, unknown ? `unknown option ${unknown}` : (error as Error).message)
  }
}

/** A whole number of at least 1 from a flag, or a usage error naming the flag. */
export function positiveInteger(
  script: Script,
  text: string | undefined,
  flag: string,
  fallback: number,
): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    usageError(script, `${flag} must be a whole number of at least 1, not ${JSON.stringify(text)}`)
  }
  return value
}
