#!/usr/bin/env bash
# run_pages.sh — builds the page store benchmark (reopen after a crash,
# checkpoint throughput, commit latency under checkpoints; see README.md)
# as a release build (-O2, NDEBUG, no sanitizers, the options of
# run_ingest.sh) and runs it.
#
#   bench/run_pages.sh                         the full run (1M points)
#   bench/run_pages.sh --points 100000 --tail-mb 16 --seconds 2 --repeat 1
#   PERF=1 bench/run_pages.sh                  + a profile of one cold reopen
#
# Options after the script name go to cairn_bench_pages (see --help) and
# override the defaults given here (--dir $BUILD_DIR/bench-tmp).
# Environment: BUILD_DIR (default <repo>/build-bench), BENCH_DIR (default
# $BUILD_DIR/bench-tmp; must be on the work disk, not tmpfs), PERF=1: pass
# --perf (one more cold reopen of the crashed database under `perf record`,
# the top of `perf report` in the report).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
data=${BENCH_DIR:-$build/bench-tmp}
. "$root/bench/lib.sh"

bench_build "$build" bench/cairn_bench_pages 2
mkdir -p "$data"

cmd=$(bench_cmdline bench/run_pages.sh "$@")
[ "${PERF:-0}" = 1 ] && cmd="PERF=1 $cmd"
perf=()
[ "${PERF:-0}" = 1 ] && perf=(--perf)
exec "$build/bench/cairn_bench_pages" --dir "$data" --command "$cmd" \
    "${perf[@]}" "$@"
