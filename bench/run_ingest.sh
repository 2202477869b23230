#!/usr/bin/env bash
# run_ingest.sh — builds the durable-ingest benchmark as a release build
# (-O2, NDEBUG, no sanitizers) in build-bench/ and runs it.
#
#   bench/run_ingest.sh                      human tables, 3 interleaved reps
#   bench/run_ingest.sh --markdown           tables for bench/RESULTS.md
#   bench/run_ingest.sh --seconds 5 --engines cairn,disk --workloads 16t
#
# Options after the script name go to cairn_bench_ingest (see --help) and
# override the defaults given here (--repeat 3, --dir build-bench/bench-tmp).
# Environment: BUILD_DIR (default <repo>/build-bench), BENCH_DIR (default
# $BUILD_DIR/bench-tmp; must be on the work disk, not tmpfs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
data=${BENCH_DIR:-$build/bench-tmp}
. "$root/bench/lib.sh"

bench_build "$build" bench/cairn_bench_ingest 2
cmd=$(bench_cmdline bench/run_ingest.sh "$@")
exec "$build/bench/cairn_bench_ingest" --repeat 3 --dir "$data" \
    --command "$cmd" "$@"
