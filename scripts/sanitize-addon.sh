#!/usr/bin/env bash
# Builds the N-API addon (binding.gyp's sources: native/binding.cc, scanner.cc, precise-timer.cc) with ASan +
# UBSan into build/sanitized/ (the normal build in build/Release is left alone) and runs the codec,
# differential, wire and send-timer suites on it.
# Exits non-zero on a test failure or on any sanitizer report.
#
#   bash scripts/sanitize-addon.sh            build, then run the suites
#   bash scripts/sanitize-addon.sh --build    build only
#   SANITIZE_SUITES="test/codec" bash ...     other suites (vitest filters)
#
# The scanner core is fuzzed under the same sanitizers (scripts/fuzz.sh); this covers what the fuzzer cannot:
# the binding's argument checks and the typed-array memory V8 hands it. Node itself is not instrumented, so the
# ASan runtime has to be the first library in the process: it is LD_PRELOADed into every node this starts.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/sanitized
addon=$PWD/$out/fastcgi_engine.node
cxx=${CXX:-g++}

if ! command -v "$cxx" >/dev/null; then
  echo "sanitize-addon: $cxx not found (apt-get install g++)" >&2
  exit 1
fi
# The compiler's own shared ASan runtime (clang finds g++'s libasan too, but its objects need its own, which a
# shared object links only when asked).
shared_runtime=()
if "$cxx" --version | grep -q clang; then
  runtime=$("$cxx" -print-file-name="libclang_rt.asan-$(uname -m).so")
  shared_runtime=(-shared-libasan)
else
  runtime=$("$cxx" -print-file-name=libasan.so)
fi
if [ ! -e "$runtime" ]; then
  echo "sanitize-addon: $cxx has no shared ASan runtime;" \
    "apt-get install libasan8 (g++) or libclang-rt-14-dev (clang++)" >&2
  exit 1
fi

# The headers node-gyp compiles against: those installed next to this node, else node-gyp's download cache.
node_include=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
if [ ! -e "$node_include/node_api.h" ]; then
  node_include="${HOME}/.cache/node-gyp/$(node -p process.versions.node)/include/node"
fi
if [ ! -e "$node_include/node_api.h" ]; then
  echo "sanitize-addon: no Node headers found; run npm run build:native once (node-gyp fetches them)" >&2
  exit 1
fi
addon_api=$(node -p "require('node-addon-api').include_dir")
# The sources binding.gyp builds, so a file added there is not missing here.
read -r -a sources <<<"$(node -p "JSON.parse(require('fs').readFileSync('binding.gyp', 'utf8'))
  .targets.find((t) => t.target_name === 'fastcgi_engine').sources.join(' ')")"

mkdir -p "$out"
# The defines and language flags of binding.gyp and node-addon-api's noexcept target, at -O1 with frame pointers
# for readable reports instead of -O3; -fno-sanitize-recover makes every UBSan finding fatal.
"$cxx" -shared -fPIC -pthread -std=gnu++17 -fno-rtti -fno-exceptions -fvisibility=hidden -g -O1 \
  -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
  ${shared_runtime[@]+"${shared_runtime[@]}"} \
  -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNODE_ADDON_API_DISABLE_CPP_EXCEPTIONS \
  -DBUILDING_NODE_EXTENSION -DNODE_GYP_MODULE_NAME=fastcgi_engine \
  -I"$node_include" -I"$addon_api" -Inative "${sources[@]}" -o "$addon"
echo "sanitize-addon: built $out/fastcgi_engine.node with $cxx (runtime $runtime)"
[ "${1:-}" = "--build" ] && exit 0

logs=$PWD/$out/reports
rm -rf "$logs" && mkdir -p "$logs"
export LD_PRELOAD=$runtime
# detect_leaks=0: V8 and node leave allocations at exit by design, and LeakSanitizer would report them all.
# log_path: a report lands in a file as well as on stderr, so one raised in a vitest worker whose output is
# lost still fails this script.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"
export FASTCGI_NATIVE_ADDON=$addon
export FASTCGI_REQUIRE_NATIVE=1

# The suites must run on this build, not on build/Release: check what the loader actually mapped.
node --import tsx -e "
const { codec } = require('./src/codec/load');
const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
if (codec.implementation !== 'native' || !maps.includes(process.env.FASTCGI_NATIVE_ADDON)) {
  console.error('sanitize-addon: the sanitized addon is not the one loaded');
  process.exit(1);
}
if (!/libasan|libclang_rt\.asan/.test(maps)) {
  console.error('sanitize-addon: no ASan runtime in the process');
  process.exit(1);
}
console.log('sanitize-addon: loader uses ' + process.env.FASTCGI_NATIVE_ADDON);
"

status=0
# shellcheck disable=SC2086
npx vitest run ${SANITIZE_SUITES:-test/codec test/differential test/wire test/load/send-timer.test.ts} || status=1
if compgen -G "$logs/*" >/dev/null; then
  cat "$logs"/* >&2
  echo "sanitize-addon: FAILED, sanitizer reports above (also in $out/reports/)" >&2
  exit 1
fi
[ $status -eq 0 ] || { echo "sanitize-addon: FAILED (tests)" >&2; exit 1; }
echo "sanitize-addon: suites passed on the ASan + UBSan addon, no sanitizer report"
