import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * The benchmark measures the built service (dist/, what `npm start` runs): the server child
 * runs bin/telesalud.js, and the in-process seeding loads the same compiled modules, so both
 * always agree on migrations and storage even while src/ is being edited. Types come from src/.
 */

export const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST_DIR = path.join(REPO_DIR, 'dist');
const SRC_DIR = path.join(REPO_DIR, 'src');

const load = <T>(relative: string): Promise<T> => import(pathToFileURL(path.join(DIST_DIR, relative)).href) as Promise<T>;

async function loadBuild() {
  if (!existsSync(path.join(DIST_DIR, 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  const [node, config, logger, repository, people] = await Promise.all([
    load<typeof import('../src/server/node.js')>('server/node.js'),
    load<typeof import('../src/config/config.js')>('config/config.js'),
    load<typeof import('../src/logging/logger.js')>('logging/logger.js'),
    load<typeof import('../src/records/repository.js')>('records/repository.js'),
    load<typeof import('../src/demo/synthetic-people.js')>('demo/synthetic-people.js'),
  ]);
  return {
    startNode: node.startNode,
    loadConfig: config.loadConfig,
    createLogger: logger.createLogger,
    Repository: repository.Repository,
    prng: people.prng,
    pick: people.pick,
    syntheticPatient: people.syntheticPatient,
  };
}

export type Build = Awaited<ReturnType<typeof loadBuild>>;

let loaded: Promise<Build> | undefined;
export function build(): Promise<Build> {
  loaded ??= loadBuild();
  return loaded;
}

/** The newest source file changed after the last build, if any: the run then measures older code. */
export function sourceNewerThanBuild(): string | undefined {
  const builtAt = statSync(path.join(DIST_DIR, 'cli', 'main.js')).mtimeMs;
  let newest: { file: string; at: number } | undefined;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'test-support') walk(full);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
        const at = statSync(full).mtimeMs;
        if (at > builtAt && (!newest || at > newest.at)) newest = { file: path.relative(REPO_DIR, full), at };
      }
    }
  };
  walk(SRC_DIR);
  return newest?.file;
}
