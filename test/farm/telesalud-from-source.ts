// `telesalud` run from the TypeScript sources (through tsx), so the farm test exercises the code
// as it is in the tree without depending on a fresh `npm run build`.
import { main } from '../../src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`telesalud: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
