#!/usr/bin/env bash
# Builds the libFuzzer target for the native scanner and fuzzes it for FUZZ_SECONDS (default 60), or for
# FUZZ_RUNS executions when that is set (the long run: FUZZ_RUNS=10000000 npm run fuzz); exits non-zero on a
# crash, leaving the input in .fuzz/artifacts/. The corpus in .fuzz/corpus grows across runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found; install the Debian packages: apt-get install clang libclang-rt-14-dev" >&2
  exit 1
fi

mkdir -p .fuzz/corpus .fuzz/artifacts
flags=(-std=c++17 -g -O1 -fno-sanitize-recover=all -Inative)
# scanner.cc twice: instrumented for libFuzzer's feedback, and without coverage (namespace renamed so both link)
# for the target's reference pass over the same bytes; both under ASan and UBSan (see the target's header).
clang++ "${flags[@]}" -fsanitize=address,undefined -Dfcgi=fcgi_uninstrumented -c native/scanner.cc \
  -o .fuzz/scanner_uninstrumented.o
clang++ "${flags[@]}" -fsanitize=fuzzer,address,undefined native/scanner.cc native/fuzz/fuzz_scanner.cc \
  .fuzz/scanner_uninstrumented.o -o .fuzz/fuzz_scanner
node scripts/make-fuzz-seeds.mjs .fuzz/corpus

seconds=${FUZZ_SECONDS:-60}
if [ -n "${FUZZ_RUNS:-}" ]; then
  limit=(-runs="$FUZZ_RUNS")
  echo "fuzz: running for $FUZZ_RUNS executions (log: .fuzz/fuzz.log)"
else
  limit=(-max_total_time="$seconds")
  echo "fuzz: running for ${seconds}s (log: .fuzz/fuzz.log)"
fi
log=.fuzz/fuzz.log
if ! .fuzz/fuzz_scanner "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix=.fuzz/artifacts/ .fuzz/corpus >"$log" 2>&1; then
  tail -n 40 "$log"
  echo "fuzz: FAILED (crash, timeout or OOM); input in .fuzz/artifacts/, replay: .fuzz/fuzz_scanner <file>" >&2
  exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
echo "fuzz: $runs runs in ${took:-$seconds} seconds ($rate exec/s), no crash" \
  "($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
  "family $(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
  "model $(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores," \
  "load average $(cut -d ' ' -f 1 /proc/loadavg))"
