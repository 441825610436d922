// Preloaded into each farm node (NODE_OPTIONS=--require …; Node refuses --cpu-prof there): a V8
// CPU profile of the whole process, written as it exits to TELESALUD_BENCH_CPU_PROFILE_DIR, as
// --cpu-prof would. The samples carry the machine's monotonic clock, so bench/profile-summary.ts
// can keep the measured seconds alone.
'use strict';
const { Session } = require('node:inspector');
const { mkdirSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const dir = process.env.TELESALUD_BENCH_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  // A main-thread session answers synchronously: the profile is written before the process is gone.
  process.once('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `node-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
