import { describe, expect, it } from 'vitest'
import { parseBenchArgs } from '../../../gpu-service/src/bench/args.ts'
import { UsageError } from '../../../gpu-service/src/cli/usage-error.ts'

describe('parseBenchArgs', () => {
  it('defaults to the throughput benchmark at concurrency 1, 4 and 16', () => {
    expect(parseBenchArgs([])).toEqual({
      mode: 'throughput',
      concurrency: [1, 4, 16],
      runs: 16,
      repeats: 2,
      steps: undefined,
      heavyEvery: 4,
      guidance: undefined,
      out: 'docs/bench',
      before: undefined,
    })
  })

  it('reads an earlier report to compare the throughput with', () => {
    expect(parseBenchArgs(['--before', '/tmp/before/gpu-service.json'])).toMatchObject({
      mode: 'throughput',
      before: '/tmp/before/gpu-service.json',
    })
  })

  it('reads the fairness mode with its own default of 5 repeats', () => {
    expect(parseBenchArgs(['--mode', 'fairness'])).toEqual({
      mode: 'fairness',
      repeats: 5,
      bigSteps: 50,
      out: 'docs/bench',
    })
    expect(
      parseBenchArgs([
        '--mode',
        'fairness',
        '--repeats',
        '3',
        '--big-steps',
        '200',
        '--out',
        '/tmp/x',
      ]),
    ).toEqual({
      mode: 'fairness',
      repeats: 3,
      bigSteps: 200,
      out: '/tmp/x',
    })
  })

  it.each([
    [['--bogus'], "Unknown option '--bogus'"],
    [['fairness'], "Unexpected argument 'fairness'"],
    [['--runs'], "Option '--runs <value>' argument missing"],
    [['--runs', 'abc'], '--runs: expected a whole number'],
    [['--runs', '0'], '--runs: expected at least 1'],
    [['--concurrency', '1,0'], '--concurrency: expected 1 to 64'],
    [['--concurrency', '4,'], '--concurrency: expected comma-separated whole numbers, e.g. 1,4,16'],
    [['--guidance', '30'], '--guidance: expected a number from 0 to 20'],
    [['--mode', 'speed'], '--mode: expected throughput or fairness'],
    [
      ['--mode', 'fairness', '--concurrency', '4'],
      '--concurrency applies to --mode throughput only',
    ],
    [['--big-steps', '200'], '--big-steps applies to --mode fairness only'],
    [['--mode', 'fairness', '--before', 'a.json'], '--before applies to --mode throughput only'],
  ])('refuses %j with a UsageError: %s', (argv, message) => {
    expect(() => parseBenchArgs(argv)).toThrow(new UsageError(message))
  })
})
