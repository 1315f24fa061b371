import { defineConfig } from 'vitest/config';

// Unit tests of the sidebar's pure logic and API client (src/__tests__/*.test.ts[x]); `npm test`.
export default defineConfig({
  test: {
    environment: 'jsdom',
    include: ['src/__tests__/**/*.test.{ts,tsx}'],
    restoreMocks: true,
    // JupyterLab packages ship ESM that imports CSS; let vitest transform them instead of Node loading them.
    server: { deps: { inline: [/@jupyterlab\//, /@lumino\//] } },
    setupFiles: ['src/__tests__/setup.js'],
    css: false
  }
});
