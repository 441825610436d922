import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { Plugin } from 'vite';

const brotli = promisify(brotliCompress);
const gz = promisify(gzip);

/** Text assets worth compressing; images and fonts are compressed already. */
const COMPRESSIBLE = /\.(js|css|svg|json|wasm)$/;

/**
 * Writes a Brotli (.br) and a gzip (.gz) copy beside every text asset of the build, at the
 * highest levels, once per build; the node serves them to browsers that accept them
 * (src/server/web-app-routes.ts, `preCompressed`). A patient on a phone downloads about a third
 * of the bytes, and no node spends CPU compressing per request. Only the public, static assets
 * are compressed: no response that carries a secret or reflects input (so no BREACH oracle).
 */
export function precompress(): Plugin {
  let outDir = '';
  return {
    name: 'telesalud-precompress',
    apply: 'build',
    configResolved(config) {
      outDir = path.resolve(config.root, config.build.outDir);
    },
    async closeBundle() {
      const assets = path.join(outDir, 'assets');
      const files = (await readdir(assets)).filter((f) => COMPRESSIBLE.test(f));
      await Promise.all(
        files.map(async (file) => {
          const bytes = await readFile(path.join(assets, file));
          const [br, gzipped] = await Promise.all([
            brotli(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }),
            gz(bytes, { level: constants.Z_BEST_COMPRESSION }),
          ]);
          await Promise.all([writeFile(path.join(assets, `${file}.br`), br), writeFile(path.join(assets, `${file}.gz`), gzipped)]);
        }),
      );
    },
  };
}
