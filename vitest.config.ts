// Test projects split by runtime. Node tests cover shared/ and gpu-service/; the workerd project runs
// edge/ tests inside the Workers runtime (Cloudflare's Vitest integration) with local Durable Objects,
// R2, KV and Cache API, and fake gpu-service backends.
import { cloudflareTest } from '@cloudflare/vitest-plugin'
import { defineConfig } from 'vitest/config'

// The edge's fuzz seed: FUZZ_SEED, else 1 for the sample `npm test` runs, else (FUZZ_RUNS set, as in
// `npm run fuzz`) a random one, which the test prints with its figures so a failure can be repeated.
const edgeFuzzSeed =
  process.env.FUZZ_SEED ??
  (process.env.FUZZ_RUNS === undefined ? '1' : String(Math.floor(Math.random() * 2 ** 31)))

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          environment: 'node',
          include: [
            'test/shared/**/*.test.ts',
            'test/client/**/*.test.ts',
            'test/gpu-service/**/*.test.ts',
            // deploy/k8s rendered with `kubectl kustomize` (kubectl on PATH; no cluster).
            'test/deploy/**/*.test.ts',
          ],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          // Property-based fuzzing (fast-check) in plain Node: FUZZ_RUNS cases a property (200 with
          // seed 1 unless set; `npm run fuzz` runs 10,000), settings in test/fuzz/fuzz-config.ts.
          name: 'fuzz',
          environment: 'node',
          include: ['test/fuzz/**/*.fuzz.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          // wrangler dev + a real gpu-service on loopback (edge/scripts/local-stack.ts).
          name: 'e2e',
          environment: 'node',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 240_000,
        },
      },
      {
        test: {
          // One `npm start` (test/stack/global-setup.ts) shared by its files, which run one at a time
          // since they read the gpu-service's counters: the CLI, the playground in Chromium, npm start.
          name: 'stack',
          environment: 'node',
          include: ['test/stack/**/*.test.ts'],
          globalSetup: ['test/stack/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: {
                // Fake backends answer these hosts (test/edge/helpers/fake-backends.ts).
                BACKEND_URLS: 'http://backend-a.test,http://backend-b.test',
                BACKEND_SECRET: 'test-backend-secret-0123456789abcdef',
                RESULT_KEY_SECRET: 'test-result-key-secret-0123456789abcdef',
                CORS_ORIGINS: 'https://app.example',
                ALLOW_HTTP_WEBHOOKS: 'true',
                // Ended jobs prune their event logs after 3 s, so a test can watch it happen.
                EVENT_RETENTION_SECONDS: '3',
                // A stalled backend is given up after half a second (its heartbeats are faked away).
                BACKEND_IDLE_TIMEOUT_SECONDS: '0.5',
                // Cases per fuzzed route (test/edge/fuzz): a seed-fixed sample here, 10,000 in
                // `npm run fuzz`.
                FUZZ_RUNS: process.env.FUZZ_RUNS ?? '100',
                FUZZ_SEED: edgeFuzzSeed,
                HEARTBEAT_SECONDS: '0.2',
              },
            },
          }),
        ],
        test: {
          name: 'workerd',
          include: ['test/edge/**/*.test.ts'],
          testTimeout: 15_000,
        },
      },
    ],
  },
})
