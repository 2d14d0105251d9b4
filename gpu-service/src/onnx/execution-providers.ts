// Which ONNX Runtime execution providers a device name means: a frozen map, and a clear error naming the
// known devices for any other name. Session creation (session.ts) and configuration (config.ts) read it.
//
// An accelerator's list never ends in 'cpu'. onnxruntime-node drops a requested provider it has no backend
// for (with a console warning) and keeps the rest, so ['cuda', 'cpu'] ran on the CPU wherever CUDA was
// missing; with the accelerator alone, session creation fails instead (ExecutionProviderError). ONNX
// Runtime itself still runs single operators that the accelerator has no kernel for on the CPU.

/** Device name -> execution providers in preference order: the device's own, never a CPU fallback. */
export const EXECUTION_PROVIDERS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  cpu: Object.freeze(['cpu']),
  cuda: Object.freeze(['cuda']),
  // TensorRT takes the subgraphs it can build engines for; CUDA the operators it cannot.
  tensorrt: Object.freeze(['tensorrt', 'cuda']),
})

/**
 * The execution providers for a device; throws naming the known devices when it is not one of them.
 *
 * @example
 * executionProvidersFor('cuda') // ['cuda']
 */
export function executionProvidersFor(device: string): readonly string[] {
  const providers = Object.hasOwn(EXECUTION_PROVIDERS, device) ? EXECUTION_PROVIDERS[device] : null
  if (!providers) {
    const known = Object.keys(EXECUTION_PROVIDERS).join(', ')
    throw new Error(`Unknown ONNX device "${device}"; expected one of: ${known}`)
  }
  return providers
}

/** A device's execution provider could not be used: session creation failed, nothing fell back to CPU. */
export class ExecutionProviderError extends Error {
  override name = 'ExecutionProviderError'
  readonly device: string
  /** The provider that failed, when ONNX Runtime's message says which; else every provider tried. */
  readonly provider: string
  /** ONNX Runtime's message, on one line. */
  readonly reason: string

  constructor(device: string, providers: readonly string[], cause: unknown) {
    const reason = (cause instanceof Error ? cause.message : String(cause))
      .replace(/\s+/g, ' ')
      .trim()
    const provider = failedProvider(providers, reason)
    super(`device ${device}: the ${provider} execution provider could not be loaded: ${reason}`, {
      cause,
    })
    this.device = device
    this.provider = provider
    this.reason = reason
  }
}

/**
 * Which of `providers` ONNX Runtime's message blames: `OrtSessionOptionsAppendExecutionProvider_Cuda`
 * (the native library did not load) or `[cuda] backend not found` (no backend in this build).
 */
function failedProvider(providers: readonly string[], reason: string): string {
  if (providers.length === 1) return providers[0] as string
  const named = providers.find((provider) =>
    new RegExp(`(_|\\[)${provider}(\\b|\\])`, 'i').test(reason),
  )
  return named ?? providers.join(' + ')
}
