// Preloaded into the server child (node -r): if the benchmark dies without stopping it (SIGKILL,
// or tsx force-killing a busy process), the server stops itself gracefully instead of living on.
'use strict';
const parent = process.ppid; // fixed at start in Node: checked for life below
const timer = setInterval(() => {
  try {
    process.kill(parent, 0);
  } catch (err) {
    if (err.code === 'ESRCH') {
      clearInterval(timer);
      process.kill(process.pid, 'SIGTERM');
    }
  }
}, 500);
timer.unref();
