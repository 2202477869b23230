#!/usr/bin/env bash
# pitr_pg.sh — point-in-time recovery side by side with PostgreSQL 15 on
# this machine (issue 4, benchmark item 2). Prints a Markdown report.
#
#   bench/pitr_pg.sh                     ~1 GB of PostgreSQL WAL, 3 restores each
#   bench/pitr_pg.sh --quick             128 MB, 1 restore each (a few minutes less)
#   bench/pitr_pg.sh --wal-mb 512 --repeat 5
#
# Both engines get the same rows, generated from one seed by
# cairn_bench_pitr (bench/pitr.c): id bigint, a 128-d float32 vector, a
# 64-byte JSON payload. PostgreSQL stores them as
#   CREATE TABLE pts (id bigint PRIMARY KEY, vec float4[] NOT NULL, payload jsonb NOT NULL)
# (float4[], not bytea: the vector stays a vector for the server; every
# float is sent with 9 significant digits, so it reads back exactly),
# loaded with COPY, one COPY (one transaction) per --batch (1000) rows.
# cairn gets them through its public API, one transaction per 1000 rows,
# durability SYNC (PostgreSQL: fsync and synchronous_commit on, the
# defaults).
#
# Steps, PostgreSQL (a cluster in a temporary directory, run as the
# `postgres` user because the server refuses root; unix socket only, no
# TCP listener):
#   1. initdb; wal_level=replica, archive_mode=on, archive_command = a
#      script that copies the segment to the archive directory, fsyncs it,
#      renames it into place and fsyncs the directory (plain cp + fsync: no
#      compression; cairn's archive is zstd-compressed and checksummed), and
#      logs its own start and end time; shared_buffers=2GB and
#      max_wal_size=4GB (tuned for the load, not the defaults of 128MB /
#      1GB; --shared-buffers, --max-wal-size), everything else default.
#   2. --base-rows rows, then pg_basebackup -Fp -X stream -c fast (timed).
#   3. rows until --wal-mb MB of WAL lie after the backup's start LSN
#      (a first chunk measures WAL per row, the rest is sized from it): R
#      rows; the target time is clock_timestamp() right after the last of
#      them committed; then --tail-rows more rows; pg_switch_wal(), and the
#      wait for the archiver to have archived that segment.
#   4. the server is stopped. --repeat times: `sync` (before each restore
#      of either engine: the other's restore, its checks, its stop and the
#      removal of its directory leave writeback behind that neither side
#      should pay for), the archive and the base
#      backup are dropped from the page cache (cairn_bench_pitr drop-cache:
#      fdatasync + posix_fadvise DONTNEED), the clock starts, cp -a of the
#      base backup into a new data directory, recovery.signal,
#      restore_command = cp from the archive, recovery_target_time = the
#      target, recovery_target_action = promote, archive_mode = off; pg_ctl
#      start; done when the log says "database system is ready to accept
#      connections" (after the end-of-recovery checkpoint): restore total =
#      that log line's time - the clock's start. Replay = from the log line
#      "redo starts at" to "redo done at" (it includes the restore_command
#      runs, which fetch the segments one by one during redo; the "elapsed"
#      printed on the redo done line is shown too). Checked:
#      pg_is_in_recovery() false, count(*) and max(id).
# cairn (cairn_bench_pitr pg-cairn, then pg-restore per repetition,
# interleaved with PostgreSQL's restores): the same --base-rows rows,
# cairn_checkpoint, pitr_backup (full); the same R + tail rows; close;
# pitr_archive; per repetition the repository is dropped from the page
# cache and pitr_restore --target-time (the commit time of the R-th row's
# transaction, inclusive) runs into a new directory; checked: exactly
# base + R points, 2000 sampled points byte for byte, the tail absent.
#
# Options: --wal-mb M (1024), --base-rows N (100000), --tail-rows N
# (40000: enough cairn WAL after the target for its segment to be complete
# and archived), --batch N (1000), --repeat N (3), --jobs N (cairn replay
# workers, 0 = CPUs), --seed N, --dir D (default $BUILD_DIR/pitr-tmp),
# --keep, --quick (--wal-mb 128 --base-rows 20000 --repeat 1),
# --shared-buffers S, --max-wal-size S, --quiet P (before each restore,
# wait <= 10 s until other processes use <= P % of the CPUs; 0: off).
# Environment: BUILD_DIR (default <repo>/build-pbench, made or reconfigured
# each run as a release build: bench/lib.sh, -O3), PGBIN
# (/usr/lib/postgresql/15/bin), PSQL (/usr/bin/psql).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-pbench}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=${PSQL:-/usr/bin/psql}

wal_mb=1024 base_rows=100000 tail_rows=40000 batch=1000 repeat=3 jobs=0
seed="" dir="" keep=0 shared_buffers=2GB max_wal_size=4GB quiet=0
set_wal=0 set_base=0 set_repeat=0
. "$root/bench/lib.sh"
cmd=$(bench_cmdline bench/pitr_pg.sh "$@")
die() { echo "pitr_pg.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
    --wal-mb) wal_mb=$2; set_wal=1; shift 2 ;;
    --base-rows) base_rows=$2; set_base=1; shift 2 ;;
    --tail-rows) tail_rows=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --repeat) repeat=$2; set_repeat=1; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --quiet) quiet=$2; shift 2 ;;
    --shared-buffers) shared_buffers=$2; shift 2 ;;
    --max-wal-size) max_wal_size=$2; shift 2 ;;
    --quick)
        [ $set_wal = 1 ] || wal_mb=128
        [ $set_base = 1 ] || base_rows=20000
        [ $set_repeat = 1 ] || repeat=1
        shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
for v in wal_mb base_rows tail_rows batch repeat jobs quiet; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "--${v//_/-} wants a whole number, not '${!v}'"
done
[ "$repeat" -ge 1 ] || die "--repeat must be >= 1"
[ "$base_rows" -ge "$batch" ] || die "--base-rows must be >= --batch"
[ "$(id -u)" = 0 ] || die "run as root (the server runs as the postgres user through runuser)"
id postgres >/dev/null 2>&1 || die "no postgres user"
[ -x "$PGBIN/initdb" ] || die "no PostgreSQL at $PGBIN"

# ---- build -------------------------------------------------------------------
bench_build "$build" bench/cairn_bench_pitr 3
B=$build/bench/cairn_bench_pitr
bopt=(--batch "$batch")
[ -n "$seed" ] && bopt+=(--seed "$seed")

top=${dir:-$build/pitr-tmp}
mkdir -p "$top"
[ "$(stat -f -c %T "$top")" != tmpfs ] || die "--dir $top is tmpfs: use the disk"
W=$(mktemp -d "$top/pitr-pg-XXXXXX")
chmod 755 "$W"
P=$W/pg
mkdir -p "$P/archive"
chown -R postgres:postgres "$P"

as_pg() { runuser -u postgres -- "$@"; }
port=5432
q() { as_pg "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$P" -p "$port" -U postgres -d postgres "$@"; }
qa() { q -At -c "$1"; }
now() { echo "$EPOCHREALTIME"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
lsn() { local h=${1%/*} l=${1#*/}; echo $(( (16#$h << 32) + 16#$l )); }
log_ts() { # the time of a PostgreSQL log line ("2026-11-21 20:50:01.123 UTC [..] ...")
    date -d "$(cut -c1-27 <<<"$1" | sed 's/ \[.*//')" +%s.%N
}
cleanup() {
    for d in "$P/data" "$P/restored"; do
        [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1
    done
    if [ "$keep" = 0 ]; then rm -rf "$W"; else echo "kept $W" >&2; fi
}
trap cleanup EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t_all=$(now)

# ---- PostgreSQL: cluster, base rows, base backup --------------------------------
echo "PostgreSQL: initdb" >&2
as_pg "$PGBIN/initdb" -D "$P/data" -U postgres -A trust -E UTF8 --no-locale >"$P/initdb.log" 2>&1 ||
    { cat "$P/initdb.log" >&2; die "initdb failed"; }
cat >"$P/archive.sh" <<EOF
#!/bin/bash
# archive_command: copy, fsync, rename into place, fsync the directory
set -e
t0=\$EPOCHREALTIME
cp "\$1" "$P/archive/\$2.tmp"
sync "$P/archive/\$2.tmp"
mv "$P/archive/\$2.tmp" "$P/archive/\$2"
sync "$P/archive"
echo "\$2 \$t0 \$EPOCHREALTIME" >>"$P/archive_times"
EOF
chmod 755 "$P/archive.sh"
chown postgres:postgres "$P/archive.sh"
cat >>"$P/data/postgresql.conf" <<EOF
listen_addresses = ''
port = $port
unix_socket_directories = '$P'
wal_level = replica
archive_mode = on
archive_command = '$P/archive.sh "%p" "%f"'
shared_buffers = $shared_buffers
max_wal_size = $max_wal_size
log_line_prefix = '%m [%p] '
log_timezone = 'UTC'
timezone = 'UTC'
log_checkpoints = on
EOF
as_pg "$PGBIN/pg_ctl" -D "$P/data" -l "$P/primary.log" -w start >/dev/null
pgver=$("$PGBIN/postgres" --version)
qa "CREATE TABLE pts (id bigint PRIMARY KEY, vec float4[] NOT NULL, payload jsonb NOT NULL)" >/dev/null
echo "PostgreSQL: $base_rows base rows" >&2
"$B" pg-rows --from 0 --count "$base_rows" "${bopt[@]}" | q >/dev/null
echo "PostgreSQL: pg_basebackup" >&2
t0=$(now)
as_pg "$PGBIN/pg_basebackup" -h "$P" -p "$port" -U postgres -D "$P/base" -Fp -X stream -c fast
pg_backup_s=$(sub "$(now)" "$t0")
pg_backup_bytes=$(du -sb "$P/base" | cut -f1)
start_lsn=$(lsn "$(sed -n 's/^START WAL LOCATION: \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$P/base/backup_label")")

# ---- PostgreSQL: WAL after the backup -------------------------------------------
want=$(( wal_mb * 1000000 ))
c1=$(( want / 750 / 10 / batch * batch )); [ "$c1" -ge "$batch" ] || c1=$batch
echo "PostgreSQL: $c1 rows to measure WAL per row" >&2
t_gen0=$(now)
"$B" pg-rows --from "$base_rows" --count "$c1" "${bopt[@]}" | q >/dev/null
done1=$(( $(lsn "$(qa 'SELECT pg_current_wal_lsn()')") - start_lsn ))
rest=0
if [ "$done1" -lt "$want" ]; then
    rest=$(( ( (want - done1) * c1 / done1 + batch - 1) / batch * batch ))
fi
rows=$(( c1 + rest ))
echo "PostgreSQL: $rest more rows ($rows after the backup)" >&2
"$B" pg-rows --from $(( base_rows + c1 )) --count "$rest" "${bopt[@]}" | q >/dev/null
target=$(qa "SELECT clock_timestamp()")
pg_wal_main=$(( $(lsn "$(qa 'SELECT pg_current_wal_lsn()')") - start_lsn ))
echo "PostgreSQL: $tail_rows rows after the target ($target)" >&2
"$B" pg-rows --from $(( base_rows + rows )) --count "$tail_rows" "${bopt[@]}" | q >/dev/null
t_gen_end=$(now)
pg_wal_gen=$(( $(lsn "$(qa 'SELECT pg_current_wal_lsn()')") - start_lsn ))
seg=$(qa "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 6000); do
    last=$(qa "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    [[ "$last" > "$seg" || "$last" = "$seg" ]] && break
    sleep 0.1
done
[[ "$last" > "$seg" || "$last" = "$seg" ]] || die "the archiver did not reach $seg"
t_arch_end=$(now)
[ "$(qa 'SELECT failed_count FROM pg_stat_archiver')" = 0 ] || die "archive_command failed (see $P/primary.log)"
as_pg "$PGBIN/pg_ctl" -D "$P/data" -m fast stop >/dev/null
pg_gen_s=$(sub "$t_gen_end" "$t_gen0")
pg_arch_wait=$(sub "$t_arch_end" "$t_gen_end")
read -r pg_arch_work pg_arch_n < <(awk '{ s += $3 - $2; n++ } END { printf "%.3f %d\n", s, n }' "$P/archive_times")
pg_arch_bytes=$(du -sb "$P/archive" | cut -f1)


# ---- cairn: the same rows ---------------------------------------------------------
echo "cairn: the same rows (pg-cairn)" >&2
"$B" pg-cairn --work "$W/cairn" --base-rows "$base_rows" --rows "$rows" --tail-rows "$tail_rows" \
    "${bopt[@]}" >"$W/cairn.keys"
declare -A C
while IFS='=' read -r k v; do C[$k]=$v; done <"$W/cairn.keys"

# ---- restores, interleaved ----------------------------------------------------------
declare -a PG_OTHER CA_OTHER PG_EL PG_TOTAL PG_COPY PG_START PG_REDO PG_END PG_USER PG_SYS PG_SEGS CA_TOTAL CA_PAGES \
    CA_FETCH CA_REPLAY CA_CPU CA_LOAD CA_REDO CA_NEWTL
pg_restore_once() {
    local i=$1 d=$P/restored log=$P/restore-$1.log
    rm -rf "$d"
    sync # neither side pays for the writeback the other left
    "$B" drop-cache "$P/archive" "$P/base" >/dev/null
    [ "$quiet" = 0 ] || PG_OTHER[$1]=$("$B" wait-quiet "$quiet")
    local t0; t0=$(now)
    cp -a "$P/base" "$d"
    local t_copy; t_copy=$(now)
    touch "$d/recovery.signal"
    cat >>"$d/postgresql.auto.conf" <<EOF
archive_mode = off
restore_command = 'cp "$P/archive/%f" "%p"'
recovery_target_time = '$target'
recovery_target_action = 'promote'
EOF
    chown -R postgres:postgres "$d"
    as_pg "$PGBIN/pg_ctl" -D "$d" -l "$log" start >/dev/null
    local n=0
    until grep -q "database system is ready to accept connections" "$log" 2>/dev/null; do
        sleep 0.02
        n=$((n + 1))
        [ $n -lt 50000 ] || die "restore $i: no end of recovery in $log"
        if grep -q "FATAL\|PANIC" "$log" 2>/dev/null; then cat "$log" >&2; die "restore $i failed"; fi
    done
    local ready redo_start redo_done
    ready=$(grep "database system is ready to accept connections" "$log" | tail -1)
    redo_start=$(grep "redo starts at" "$log" | head -1)
    redo_done=$(grep "redo done at" "$log" | head -1)
    [ -n "$redo_done" ] || { cat "$log" >&2; die "restore $i: no 'redo done' line"; }
    local check; check=$(qa "SELECT pg_is_in_recovery(), count(*), max(id) FROM pts")
    [ "$check" = "f|$(( base_rows + rows ))|$(( base_rows + rows - 1 ))" ] ||
        die "restore $i: in recovery / rows / max id = $check, want f|$(( base_rows + rows ))|$(( base_rows + rows - 1 ))"
    as_pg "$PGBIN/pg_ctl" -D "$d" -m fast stop >/dev/null
    local t_ready t_rs t_rd
    t_ready=$(log_ts "$ready")
    t_rs=$(log_ts "$redo_start"); t_rd=$(log_ts "$redo_done")
    PG_TOTAL[$i]=$(sub "$t_ready" "$t0")
    PG_COPY[$i]=$(sub "$t_copy" "$t0")
    PG_START[$i]=$(sub "$t_rs" "$t_copy")
    # the time between the two log lines (the total is measured on the
    # same clock); the "elapsed" that the redo done line prints is kept too
    PG_REDO[$i]=$(sub "$t_rd" "$t_rs")
    PG_EL[$i]=$(sed -n 's/.*elapsed: \([0-9.]*\) s.*/\1/p' <<<"$redo_done")
    PG_END[$i]=$(sub "$t_ready" "$t_rd")
    PG_USER[$i]=$(sed -n 's/.*user: \([0-9.]*\) s.*/\1/p' <<<"$redo_done")
    PG_SYS[$i]=$(sed -n 's/.*system: \([0-9.]*\) s.*/\1/p' <<<"$redo_done")
    PG_SEGS[$i]=$(grep -c "restored log file" "$log" || true)
    pg_redo_from=$(sed -n 's/.*redo starts at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' <<<"$redo_start")
    pg_redo_to=$(sed -n 's/.*redo done at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' <<<"$redo_done")
    pg_redo_bytes=$(( $(lsn "$pg_redo_to") - $(lsn "$pg_redo_from") ))
    pg_stop_line=$(grep "recovery stopping" "$log" | head -1 | sed 's/.*LOG: *//')
    pg_ckpt_line=$(awk '/checkpoint starting: end-of-recovery/ { e = 1 } e && /checkpoint complete/ { print; exit }' "$log" | sed 's/.*LOG: *//')
    rm -rf "$d"
}
cairn_restore_once() {
    local i=$1
    sync # as before PostgreSQL's restore
    [ "$quiet" = 0 ] || CA_OTHER[$1]=$("$B" wait-quiet "$quiet")
    "$B" pg-restore --work "$W/cairn" --target-us "${C[target_time_us]}" --base-rows "$base_rows" \
        --rows "$rows" --tail-rows "$tail_rows" --pg-jobs "$jobs" --quiet "$quiet" "${bopt[@]}" >"$W/cairn-restore-$i.keys"
    declare -A R
    while IFS='=' read -r k v; do R[$k]=$v; done <"$W/cairn-restore-$i.keys"
    CA_TOTAL[$i]=${R[restore_s]}; CA_PAGES[$i]=${R[pages_s]}; CA_FETCH[$i]=${R[fetch_s]}
    CA_REPLAY[$i]=${R[replay_s]}
    CA_CPU[$i]=${R[restore_cpu_s]}
    CA_LOAD[$i]=${R[load_s]}; CA_REDO[$i]=${R[redo_s]}
    CA_NEWTL[$i]=$(awk -v a="${R[replay_s]}" -v b="${R[load_s]}" -v c="${R[redo_s]}" 'BEGIN { printf "%.3f", a - b - c }')
    ca_records=${R[replay_records]}; ca_wal=${R[replay_wal_bytes]}; ca_txns=${R[replay_txns]}
    ca_verified=${R[verified]}; ca_other=${R[restore_other_cpu]}
}
for i in $(seq 1 "$repeat"); do
    echo "restore $i/$repeat: PostgreSQL" >&2
    pg_restore_once "$i"
    echo "restore $i/$repeat: cairn" >&2
    cairn_restore_once "$i"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
# The record bytes PostgreSQL replayed (the LSN distance also counts the
# unused rest of the segment that pg_basebackup's end switched away from)
pg_rec_bytes=$("$PGBIN/pg_waldump" -p "$P/archive" -s "$pg_redo_from" -e "$pg_redo_to" --stats 2>/dev/null |
    awk '$1 == "Total" { print $7 }')
[[ $pg_rec_bytes =~ ^[0-9]+$ ]] || die "pg_waldump --stats gave no total for $pg_redo_from..$pg_redo_to"

# ---- report --------------------------------------------------------------------------
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
f2() { awk -v a="$1" 'BEGIN { printf "%.2f", a }'; }
mb() { awk -v a="$1" 'BEGIN { printf "%.1f", a / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "-" }'; }
rate() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b; else printf "-" }'; }
pg_total=$(med "${PG_TOTAL[@]}"); ca_total=$(med "${CA_TOTAL[@]}")
pg_redo=$(med "${PG_REDO[@]}"); ca_replay=$(med "${CA_REPLAY[@]}"); ca_redo=$(med "${CA_REDO[@]}")
ca_fetch=$(med "${CA_FETCH[@]}")
# The replay rate on both sides: from the first record replayed to the
# target, waits for WAL not fetched yet included; the startup before it
# (PostgreSQL: server start to "redo starts"; cairn: loading the base's
# pages) and the end-of-recovery checkpoint after it are rows of their own.
pg_rps=$(rate "$rows" "$pg_redo"); ca_rps=$(rate "$rows" "$ca_redo")
pg_mbs=$(awk -v a="$pg_rec_bytes" -v b="$pg_redo" 'BEGIN { printf "%.1f", a / 1e6 / b }')
ca_mbs=$(awk -v a="$ca_wal" -v b="$ca_redo" 'BEGIN { printf "%.1f", a / 1e6 / b }')
tot_ratio=$(awk -v a="$ca_total" -v b="$pg_total" 'BEGIN { printf "%.2f", a / b }')
rows_ratio=$(awk -v a="$ca_rps" -v b="$pg_rps" 'BEGIN { printf "%.2f", a / b }')
mbs_ratio=$(awk -v a="$ca_mbs" -v b="$pg_mbs" 'BEGIN { printf "%.2f", a / b }')
met() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = op == "le" ? v <= t : v >= t; printf "%s", ok ? "yes" : "**no**" }'; }
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)
after=$(( rows + tail_rows ))

cat <<EOF
### Point-in-time recovery side by side with PostgreSQL

Command: \`$cmd\`

- $cpu, $(nproc) CPUs, kernel $(uname -r); data on $(stat -f -c %T "$W") ($W); $(date -u '+%Y-%m-%d %H:%M UTC'); $pgver; cairn ${C[cairn_version]}
- load average $load0 at start, $load1 at end; whole run $(sub "$(now)" "$t_all") s; $repeat restore(s) each, interleaved, medians shown
- rows: id bigint + 128 x float4 + 64 B JSON; PostgreSQL: \`pts (id bigint PRIMARY KEY, vec float4[], payload jsonb)\`, COPY of $batch rows per transaction, shared_buffers=$shared_buffers, max_wal_size=$max_wal_size, archive_command = cp + fsync + rename + fsync of the directory (uncompressed); cairn: one collection, SYNC, $batch rows per transaction, archived WAL zstd level -1 (the repository default; packs level 3) + SHA-256
- $base_rows rows before the base backup, $rows rows from the backup to the target, $tail_rows after the target; restore target: PostgreSQL recovery_target_time = clock_timestamp() after the last target row committed ($target), cairn --target-time = that row's commit time (both inclusive); both restores were checked: $(( base_rows + rows )) rows, none after the target

| phase | PostgreSQL 15 | cairn | cairn / PostgreSQL |
|---|---:|---:|---:|
| base backup s (bytes) | $pg_backup_s ($(mb "$pg_backup_bytes") MB, pg_basebackup -Fp) | ${C[backup_s]} ($(mb "${C[backup_bytes_stored]}") MB stored) | $(ratio "${C[backup_s]}" "$pg_backup_s") |
| WAL generated after the backup, MB, LSN distance from its start ($after rows) | $(mb "$pg_wal_gen") | $(mb "${C[wal_gen_bytes]}") | $(ratio "${C[wal_gen_bytes]}" "$pg_wal_gen") |
| of which up to the target, MB ($rows rows) | $(mb "$pg_wal_main") | $(mb "${C[wal_main_bytes]}") | $(ratio "${C[wal_main_bytes]}" "$pg_wal_main") |
| WAL generation s (rows/s) | $pg_gen_s ($(rate "$after" "$pg_gen_s")) | ${C[gen_s]} ($(rate "$after" "${C[gen_s]}")) | $(ratio "${C[gen_s]}" "$pg_gen_s") |
| archive work s (segments; MB in archive) | $pg_arch_work (sum of archive_command runs during generation; $pg_arch_n; $(mb "$pg_arch_bytes")) | ${C[archive_s]} (pitr_archive after the close; ${C[archive_segments]}; $(mb "${C[archive_bytes_stored]}")) | $(ratio "${C[archive_s]}" "$pg_arch_work") |
| archive lag after the last commit s | $pg_arch_wait (pg_switch_wal to archived) | ${C[archive_s]} (one pitr_archive run) | |
| **restore total s** | **$pg_total** | **$ca_total** | **${tot_ratio}x** (target <= 0.25x: $(met "$tot_ratio" 0.25 le)) |
| - base: cp -a of the backup / pages from the repository | $(med "${PG_COPY[@]}") | $(med "${CA_PAGES[@]}") | |
| - server start to redo start / the base's pages loaded into memory | $(med "${PG_START[@]}") | $(med "${CA_LOAD[@]}") | |
| - **replay**: log lines redo starts to redo done (segments fetched by restore_command meanwhile) / from the first record to the target (waits for segments not fetched yet included) | **$pg_redo** | **$ca_redo** | $(ratio "$ca_redo" "$pg_redo") |
| - redo done to ready (end-of-recovery checkpoint, promote) / the new timeline's checkpoint | $(med "${PG_END[@]}") | $(med "${CA_NEWTL[@]}") | $(ratio "$(med "${CA_NEWTL[@]}")" "$(med "${PG_END[@]}")") |
| - WAL fetch work: (in the replay above: restore_command) / its own threads, summed over them, into memory beside the pages and ahead of the replay; overlapped, not added to the total | | $ca_fetch | |
| rows replayed | $rows | $rows | |
| WAL replayed, MB | $(mb "$pg_rec_bytes") of records (pg_waldump --stats; LSN distance $(mb "$pg_redo_bytes"); ${PG_SEGS[1]} segments restored) | $(mb "$ca_wal") (LSN distance; $ca_records records, $ca_txns transactions) | $(ratio "$ca_wal" "$pg_rec_bytes") |
| **replay rows/s** | **$pg_rps** | **$ca_rps** | **${rows_ratio}x** (target >= 8x: $(met "$rows_ratio" 8 ge)) |
| **replay WAL MB/s** | **$pg_mbs** | **$ca_mbs** | **${mbs_ratio}x** (target >= 8x: $(met "$mbs_ratio" 8 ge)) |
| replay CPU s | $(med "${PG_USER[@]}") user + $(med "${PG_SYS[@]}") system (startup process) | $(med "${CA_CPU[@]}") (whole restore, all threads) | |

Per restore (s): PostgreSQL total $(echo "${PG_TOTAL[@]}" | tr ' ' '/'), redo $(echo "${PG_REDO[@]}" | tr ' ' '/') (the "elapsed" of its redo done lines: $(echo "${PG_EL[@]}" | tr ' ' '/')); cairn total $(echo "${CA_TOTAL[@]}" | tr ' ' '/'), load + redo + new timeline $(echo "${CA_REPLAY[@]}" | tr ' ' '/'), redo $(echo "${CA_REDO[@]}" | tr ' ' '/'). cairn restores: jobs $jobs (0 = CPUs), other processes' CPU during the last one $ca_other, $ca_verified sampled points verified.$( [ "$quiet" = 0 ] || echo " Before each restore the script waited (<= 10 s) for other processes to use <= $quiet % of the CPUs; they used (PostgreSQL/cairn, %): $(echo "${PG_OTHER[@]}" | tr ' ' '/') / $(echo "${CA_OTHER[@]}" | tr ' ' '/')." )

PostgreSQL's log of the last restore: "$pg_stop_line"; the end-of-recovery checkpoint: "$pg_ckpt_line".
EOF
