// The dashboard's build: `npm run build:dashboard` writes dist/dashboard/ (index.html and
// content-hashed files under assets/), which `petri server` serves on the API host
// (src/api/routes/dashboard.ts). `npm run test:dashboard` runs its Vitest tests.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    // The server's CSP allows scripts from its own origin only: no inline module preload polyfill.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
  test: {
    root: here,
    include: ['**/*.test.ts', '**/*.test.tsx'],
    environment: 'node',
  },
});
