#!/usr/bin/env bash
# run_pitr.sh — builds the point-in-time recovery benchmark (restore replay
# throughput, full backup against the disk, incremental backup size; see
# README.md) as a release build and runs it. The side-by-side run with
# PostgreSQL is bench/pitr_pg.sh.
#
#   bench/run_pitr.sh                          the full run (about 5 minutes here)
#   bench/run_pitr.sh --quick                  small sizes (well under a minute)
#   bench/run_pitr.sh replay --wal-mb 512      one part, more WAL
#
# Options after the script name go to cairn_bench_pitr (see --help) and
# override the defaults given here (--dir $BUILD_DIR/pitr-tmp).
# Environment: BUILD_DIR (default <repo>/build-pbench, made or reconfigured
# each run as a release build: bench/lib.sh, -O3), BENCH_DIR
# (default $BUILD_DIR/pitr-tmp; must be on the work disk, not tmpfs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-pbench}
data=${BENCH_DIR:-$build/pitr-tmp}

. "$root/bench/lib.sh"

bench_build "$build" bench/cairn_bench_pitr 3
mkdir -p "$data"

cmd=$(bench_cmdline bench/run_pitr.sh "$@")
# Sub-commands (replay, backup) come first, options after them.
parts=()
while [ $# -gt 0 ] && [[ $1 != -* ]]; do
    parts+=("$1")
    shift
done
exec "$build/bench/cairn_bench_pitr" "${parts[@]}" --dir "$data" --command "$cmd" "$@"
