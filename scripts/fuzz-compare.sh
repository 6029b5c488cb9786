#!/usr/bin/env bash
# Fuzzing speed of two versions on this machine, one after the other: each version's own scripts/fuzz.sh, from
# its own fresh seed corpus, for FUZZ_SECONDS (default 60) each.
#
#   bash scripts/fuzz-compare.sh <old-rev> [<new-rev>]    new-rev defaults to the working tree
#
# The rate depends on the machine's other load (libFuzzer reports wall-clock exec/s), which is why both runs
# share one invocation; the summary lines give the load average each ran under.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash scripts/fuzz-compare.sh <old-rev> [<new-rev>]" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # label, tree
  echo "== $1"
  FUZZ_SECONDS="${FUZZ_SECONDS:-60}" bash "$2/scripts/fuzz.sh" | tail -n 1
}

git archive "$1" | tar -x -C "$tmp" --one-top-level=old
if [ $# -ge 2 ]; then
  git archive "$2" | tar -x -C "$tmp" --one-top-level=new
  new=$tmp/new
else
  # Only what the fuzz build reads, so a busy working tree is not copied whole.
  mkdir -p "$tmp/new/src/codec"
  cp -r native scripts "$tmp/new/"
  cp src/codec/known-names.json "$tmp/new/src/codec/"
  new=$tmp/new
fi
rm -rf "$tmp/old/.fuzz" "$new/.fuzz"
run "$1" "$tmp/old"
run "${2:-working tree}" "$new"
