import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard builds to dist/web beside the compiled server, which serves it
// (src/dashboard/). JSX is Preact's automatic runtime through Vite's own transform,
// so no framework plugin is needed.
const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
  },
});
