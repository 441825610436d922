/**
 * Rebuilds `common-passwords.txt.br` from the source list named in README.md beside this file.
 *
 *   npx tsx src/auth/passwords/breached/build-common-passwords.ts path/to/10_million_password_list_top_1M.txt
 *
 * Output: every entry lowercased, printable ASCII only, at least MIN_ENTRY_LENGTH characters,
 * deduplicated, sorted by byte value (the order `Buffer.compare` uses for the binary search in
 * ../breached-list.ts), one per line with a final newline, Brotli-compressed at quality 11.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants } from 'node:zlib';

/** Shorter entries can neither be a whole password (policy floor is 8) nor a base word we look for. */
export const MIN_ENTRY_LENGTH = 4;

export function buildCommonPasswords(sourceText: string): Buffer {
  const entries = new Set<string>();
  for (const raw of sourceText.split(/\r?\n/)) {
    // A handful of source lines are mis-encoded Latin-1 bytes: keep printable ASCII only.
    if (raw.length < MIN_ENTRY_LENGTH || !/^[\x20-\x7e]+$/.test(raw)) continue;
    entries.add(raw.toLowerCase());
  }
  const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const text = Buffer.from(`${sorted.join('\n')}\n`, 'utf8');
  return brotliCompressSync(text, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_LGWIN]: 24,
      [constants.BROTLI_PARAM_SIZE_HINT]: text.length,
    },
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const source = process.argv[2];
  if (!source) {
    process.stderr.write('usage: build-common-passwords.ts SOURCE_LIST\n');
    process.exit(1);
  }
  const out = new URL('./common-passwords.txt.br', import.meta.url);
  const compressed = buildCommonPasswords(readFileSync(source, 'latin1'));
  writeFileSync(out, compressed);
  process.stdout.write(`wrote ${fileURLToPath(out)} (${compressed.length} bytes)\n`);
}
