/**
 * After the test run: every log line any test node wrote is searched for the demo patients'
 * names and the clinical-note marker. One hit fails the run. An empty log fails too, so the
 * scan can't pass by looking at nothing.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { HEALTH_DATA_MARKERS } from '../src/test-support/health-data-markers.js';
import { testLogDir } from '../src/test-support/paths.js';

const TEST_LOG_DIR = testLogDir();

const files = (await readdir(TEST_LOG_DIR).catch(() => [] as string[])).filter((f) => f.endsWith('.log'));
let lines = 0;
let requests = 0;
const hits: string[] = [];
const patterns = HEALTH_DATA_MARKERS.map((marker) => ({ marker, re: new RegExp(`(?<![\\p{L}\\p{N}])${marker.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\p{L}\\p{N}])`, 'iu') }));

for (const file of files) {
  const text = await readFile(path.join(TEST_LOG_DIR, file), 'utf8');
  for (const [n, line] of text.split('\n').entries()) {
    if (!line) continue;
    lines++;
    if (line.includes('"msg":"request"')) requests++;
    for (const { marker, re } of patterns) {
      if (re.test(line)) hits.push(`${file}:${n + 1}: contains "${marker}"`);
    }
  }
}

if (lines === 0 || requests < 100) {
  console.error(`log scan: only ${lines} log lines and ${requests} request lines in ${TEST_LOG_DIR}; the test run did not log as expected`);
  process.exit(1);
}
if (hits.length > 0) {
  console.error(`log scan: health data found in the logs:\n${hits.slice(0, 20).join('\n')}`);
  process.exit(1);
}
console.log(`log scan: ${lines} lines (${requests} requests) in ${files.length} files, no health data`);
