// gpu-service/Dockerfile, checked without a Docker engine: dockerfile-utils (the linter behind VS Code's
// Dockerfile support) with every rule an error, and the properties the image promises.
import { readFileSync } from 'node:fs'
import { ValidationSeverity, validate } from 'dockerfile-utils'
import { describe, expect, it } from 'vitest'

const dockerfile = readFileSync('gpu-service/Dockerfile', 'utf8')
/** Instructions with continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.startsWith('#'))
const finalStage = instructions.slice(
  instructions.findLastIndex((line) => line.startsWith('FROM ')),
)

describe('gpu-service/Dockerfile', () => {
  it('passes dockerfile-utils with warnings counted as errors', () => {
    const strict = ValidationSeverity.ERROR
    const diagnostics = validate(dockerfile, {
      deprecatedMaintainer: strict,
      directiveCasing: strict,
      emptyContinuationLine: strict,
      instructionCasing: strict,
      instructionCmdMultiple: strict,
      instructionEntrypointMultiple: strict,
      instructionHealthcheckMultiple: strict,
      instructionJSONInSingleQuotes: strict,
      instructionWorkdirRelative: strict,
    })
    expect(diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([])
  })

  it('builds the CPU image by default and the CUDA image from an NVIDIA CUDA cuDNN runtime base', () => {
    expect(instructions).toContain('ARG VARIANT=cpu')
    expect(instructions).toContain(`FROM runtime-\${VARIANT}`)
    expect(instructions.find((line) => line.startsWith('ARG CUDA_IMAGE='))).toMatch(
      /^ARG CUDA_IMAGE=nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/,
    )
    expect(instructions).toContain(`FROM \${CUDA_IMAGE} AS runtime-cuda`)
  })

  it('installs without the CUDA provider, and the CUDA variant fetches it and checks that it arrived', () => {
    const install = instructions
      .find((line) => line.startsWith('RUN ') && line.includes('npm ci'))
      ?.replace(/\s+/g, ' ')
    expect(install).toMatch(/^RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev /)
    expect(install).toContain(
      'if [ "$VARIANT" = "cuda" ]; then ONNXRUNTIME_NODE_INSTALL=cuda12 node ' +
        'node_modules/onnxruntime-node/script/install.js && test -f ' +
        'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so; fi',
    )
    const packageJson = JSON.parse(readFileSync('package.json', 'utf8'))
    expect(packageJson.allowScripts['onnxruntime-node']).toBe(false)
  })

  it('runs as a non-root user, with a health check, in production mode', () => {
    expect(finalStage).toContain('USER 10001:10001')
    expect(
      finalStage.some((line) => line.startsWith('HEALTHCHECK ') && line.includes('/healthz')),
    ).toBe(true)
    expect(finalStage.find((line) => line.startsWith('ENV NODE_ENV=production'))).toContain(
      'HOST=0.0.0.0',
    )
    expect(finalStage.at(-1)).toBe('CMD ["node", "gpu-service/src/service/main.ts"]')
  })
})
