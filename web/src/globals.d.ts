/** True only in the benchmark's own build (vite --mode bench), which no node serves. */
declare const __BENCH_BUILD__: boolean;
