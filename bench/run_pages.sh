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
opts=(-Dtests=false -Dbench=true -Doptimization=2 -Ddebug=false
      -Db_ndebug=true -Db_sanitize=none)

if [ -f "$build/build.ninja" ]; then
    meson configure "$build" "${opts[@]}" >/dev/null
else
    meson setup "$build" "$root" "${opts[@]}" >/dev/null
fi
ninja -C "$build" bench/cairn_bench_pages >&2
mkdir -p "$data"

# The command line printed at the top of the report, quoted for a shell.
cmd="bench/run_pages.sh"
[ "${PERF:-0}" = 1 ] && cmd="PERF=1 $cmd"
for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./=,:+@%-]+$ ]]; then
        cmd+=" $a"
    else
        cmd+=" '${a//\'/\'\\\'\'}'"
    fi
done
perf=()
[ "${PERF:-0}" = 1 ] && perf=(--perf)
exec "$build/bench/cairn_bench_pages" --dir "$data" --command "$cmd" \
    "${perf[@]}" "$@"
