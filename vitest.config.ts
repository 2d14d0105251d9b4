// Test projects split by runtime. Node tests cover shared/ and gpu-service/; a workerd project for
// edge/ (Cloudflare's vitest-pool-workers) joins this list when edge/ exists.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['test/shared/**/*.test.ts', 'test/gpu-service/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
    ],
  },
})
