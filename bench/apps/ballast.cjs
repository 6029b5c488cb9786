// Preloaded into a benchmark backend (`BENCH_NODE_FLAGS="-r ./bench/apps/ballast.cjs" npm run bench:e2e`) to give
// it an application-sized heap: ~4 MB of objects that live as long as the process. V8 schedules its collections
// by heap size, so a backend measured with only the benchmark's handler loaded can look cheaper on uploads than
// the same server under a real application (README, "End to end").
globalThis.__benchBallast = Array.from({ length: 40000 }, (_, i) => ({ i, s: 'x'.repeat(60) + i }));
