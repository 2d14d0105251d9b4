// `npm run bench`: the gpu-service benchmarks (gpu-service/src/bench/), measured through the real HTTP
// service on loopback. Exit status 64 (EX_USAGE, sysexits.h) for a bad command line, 1 for any other
// failure.
import { parseBenchArgs, USAGE } from '../bench/args.ts'
import { benchFairness } from '../bench/fairness.ts'
import { benchThroughput } from '../bench/throughput.ts'
import { EXIT_USAGE, UsageError } from './usage-error.ts'

async function main(argv: string[]): Promise<void> {
  const args = parseBenchArgs(argv)
  if (args.mode === 'help') {
    console.log(USAGE)
    return
  }
  const command = `npm run bench -- ${argv.join(' ')}`.trim()
  const markdown =
    args.mode === 'fairness'
      ? await benchFairness(args, command)
      : await benchThroughput(args, command)
  console.log(`\n${markdown}`)
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`bench: ${error.message}\n\n${USAGE}`)
    process.exitCode = EXIT_USAGE
    return
  }
  console.error(`bench: ${error instanceof Error ? (error.stack ?? error.message) : error}`)
  process.exitCode = 1
})
