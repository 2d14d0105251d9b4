// `npm run gpu-service`: configuration from the environment, the service on HOST:PORT, and a drain on
// SIGTERM or SIGINT. Exit status 78 (EX_CONFIG, sysexits.h) for a bad environment, a DUALRATE_DEVICE whose
// execution provider cannot be loaded included (one line on stderr; no fallback to the CPU), 1 if the
// models fail to load otherwise, 70 (EX_SOFTWARE) after an uncaught exception, 0 after a drain. Unhandled
// rejections and uncaught exceptions are logged as JSON error lines like everything else.
import { join } from 'node:path'
import { ExecutionProviderError } from '../onnx/execution-providers.ts'
import { ConfigError, DEV_SECRET_FILE, parseServiceConfig, resolveHmacSecret } from './config.ts'
import { jsonLogger } from './logger.ts'
import { logProcessErrors } from './process-errors.ts'
import { startService } from './start.ts'

const EXIT_CONFIG = 78

async function main(): Promise<void> {
  const logger = jsonLogger()
  logProcessErrors(logger)
  let config: ReturnType<typeof parseServiceConfig>
  try {
    config = parseServiceConfig(process.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    const lines = error.message.split('\n').map((line) => `gpu-service: ${line}`)
    console.error(`gpu-service: invalid configuration\n${lines.join('\n')}`)
    process.exit(EXIT_CONFIG)
  }
  const { secret, source } = await resolveHmacSecret(config)
  if (source !== 'env') {
    logger.warn('using the development HMAC secret', {
      path: join(config.devDir, DEV_SECRET_FILE),
      generated: source === 'generated',
    })
  }
  const service = await startService(config, { logger, hmacSecret: secret })
  logger.info('listening', { url: service.url })

  let stopping = false
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    logger.info('draining', { signal, graceMs: config.drainGraceMs })
    await service.shutdown()
    logger.info('stopped', { signal })
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)

  try {
    await service.ready
  } catch (error) {
    if (error instanceof ExecutionProviderError) {
      console.error(
        `gpu-service: DUALRATE_DEVICE=${error.device}: the ${error.provider} execution provider ` +
          `could not be loaded (${error.reason}); not falling back to the CPU: install the ` +
          `provider's libraries (gpu-service/Dockerfile, VARIANT=cuda) or set DUALRATE_DEVICE=cpu`,
      )
      process.exit(EXIT_CONFIG)
    }
    logger.error('could not load the models', { modelsDir: config.modelsDir, error })
    process.exit(1)
  }
}

main().catch((error: unknown) => {
  console.error(`gpu-service: ${error instanceof Error ? (error.stack ?? error.message) : error}`)
  process.exit(1)
})
