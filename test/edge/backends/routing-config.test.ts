// BACKEND_ROUTING and BACKEND_WEIGHTS as readConfig validates them.
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { readConfig } from '../../../edge/src/env.ts'

describe('routing configuration', () => {
  it('routes by load, every backend of weight 1, when neither variable is set', () => {
    expect(readConfig({ ...env })).toMatchObject({ backendRouting: 'load', backendWeights: [1, 1] })
  })

  it('takes an empty BACKEND_WEIGHTS (as wrangler.toml has it) as weight 1 for every backend', () => {
    expect(readConfig({ ...env, BACKEND_WEIGHTS: '' }).backendWeights).toEqual([1, 1])
  })

  it('reads BACKEND_ROUTING=rotation and one weight per backend, in BACKEND_URLS order', () => {
    const config = readConfig({ ...env, BACKEND_ROUTING: 'rotation', BACKEND_WEIGHTS: '3, 0.5' })
    expect(config).toMatchObject({ backendRouting: 'rotation', backendWeights: [3, 0.5] })
  })

  it('names a routing policy it does not know', () => {
    expect(() => readConfig({ ...env, BACKEND_ROUTING: 'random' })).toThrow(
      /Invalid worker configuration:\n {2}BACKEND_ROUTING: .*"load".*"rotation"/,
    )
  })

  it('refuses weights that are not positive numbers, or not one per backend', () => {
    expect(() => readConfig({ ...env, BACKEND_WEIGHTS: '1,0' })).toThrow(/BACKEND_WEIGHTS\[1\]: /)
    expect(() => readConfig({ ...env, BACKEND_WEIGHTS: '1,x' })).toThrow(/BACKEND_WEIGHTS\[1\]: /)
    expect(() => readConfig({ ...env, BACKEND_WEIGHTS: '2' })).toThrow(
      'Invalid worker configuration:\n  BACKEND_WEIGHTS: must give one weight for each of BACKEND_URLS, in the same order',
    )
  })
})
