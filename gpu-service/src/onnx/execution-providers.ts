// Which ONNX Runtime execution providers a device name means: a frozen map, and a clear error naming the
// known devices for any other name. Session creation (session.ts) and configuration (config.ts) read it.

/** Device name -> execution providers in preference order (CPU last, for ops a GPU provider lacks). */
export const EXECUTION_PROVIDERS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  cpu: Object.freeze(['cpu']),
  cuda: Object.freeze(['cuda', 'cpu']),
  tensorrt: Object.freeze(['tensorrt', 'cuda', 'cpu']),
})

/**
 * The execution providers for a device; throws naming the known devices when it is not one of them.
 *
 * @example
 * executionProvidersFor('cuda') // ['cuda', 'cpu']
 */
export function executionProvidersFor(device: string): readonly string[] {
  const providers = Object.hasOwn(EXECUTION_PROVIDERS, device) ? EXECUTION_PROVIDERS[device] : null
  if (!providers) {
    const known = Object.keys(EXECUTION_PROVIDERS).join(', ')
    throw new Error(`Unknown ONNX device "${device}"; expected one of: ${known}`)
  }
  return providers
}
