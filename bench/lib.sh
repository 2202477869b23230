# bench/lib.sh — sourced by the benchmark scripts (run_*.sh, pitr_pg.sh):
# the one way they build the benchmarks and quote their own command line.

# bench_build BUILD_DIR TARGET OPTIMIZATION: BUILD_DIR is set up when new and
# reconfigured otherwise, so that a directory first made for another purpose
# (a test build with sanitizers, say) never measures that: no sanitizers,
# NDEBUG, no debug info, -O<OPTIMIZATION>, tests off. Then TARGET is built.
bench_build() {
    local build=$1 target=$2 opt=$3 root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local opts=(-Dtests=false -Dbench=true -Doptimization="$opt" -Ddebug=false
                -Db_ndebug=true -Db_sanitize=none)
    if [ -f "$build/build.ninja" ]; then
        meson configure "$build" "${opts[@]}" >/dev/null
    else
        meson setup "$build" "$root" "${opts[@]}" >/dev/null
    fi
    ninja -C "$build" "$target" >&2
}

# bench_cmdline NAME ARG...: NAME and the arguments as one line a shell
# reads back the same (for the report's "Command:" line).
bench_cmdline() {
    local cmd=$1 a
    shift
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=,:+@%-]+$ ]]; then
            cmd+=" $a"
        else
            cmd+=" '${a//\'/\'\\\'\'}'"
        fi
    done
    printf '%s\n' "$cmd"
}
