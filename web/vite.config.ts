import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { precompress } from './build/precompress.js';

const root = fileURLToPath(new URL('.', import.meta.url));

/**
 * The browser app, built into dist/web and served by src/server/web-app-routes.ts.
 * `--mode bench` builds the benchmark's copy (encryption may be switched off there); that
 * build goes to a directory the bench passes with --outDir and is never served by a node.
 */
export default defineConfig(({ mode }) => ({
  root,
  base: '/',
  plugins: [react(), precompress()],
  define: { __BENCH_BUILD__: JSON.stringify(mode === 'bench') },
  server: { fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] } },
  worker: { format: 'es' },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    // The strict CSP allows no inline script, so no inline preload polyfill either.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
}));
