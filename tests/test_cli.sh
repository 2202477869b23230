#!/usr/bin/env bash
# test_cli.sh BUILD_DIR — end-to-end tests of `cairn` and `pitrctl`:
# file formats and their error messages, exit statuses, batch atomicity on
# malformed input, SIGKILL in the middle of an import, waldump's filters,
# torn tail and corruption handling, and waldump against a live writer.
#
# Exits 77 (skip) when the tools are not built. Needs bash, gzip, cmp, awk.
# Registered in tests/meson.build (suite crash); by hand:
#   tests/test_cli.sh build
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
BUILD=$(cd "$1" 2>/dev/null && pwd) || { echo "no build dir $1" >&2; exit 77; }
CAIRN=$BUILD/cli/cairn
PITRCTL=$BUILD/cli/pitrctl
if [ ! -x "$CAIRN" ] || [ ! -x "$PITRCTL" ]; then
    echo "SKIP: $CAIRN or $PITRCTL not built" >&2
    exit 77
fi
command -v gzip >/dev/null || { echo "SKIP: gzip missing" >&2; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"

FAILS=0
PASSES=0
ok() { PASSES=$((PASSES + 1)); }
fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*" >&2; }

# run RC CMD... : runs CMD, output in out.txt / err.txt, checks the status.
run() {
    local want=$1
    shift
    "$@" >out.txt 2>err.txt
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "exit $rc (want $want): $*"
        sed 's/^/    /' err.txt | head -5 >&2
        return 1
    fi
    ok
}
# has FILE TEXT : FILE contains TEXT (fixed string).
has() {
    if grep -qF -- "$2" "$1"; then ok; else
        fail "$1 lacks '$2'"
        sed 's/^/    /' "$1" | head -5 >&2
    fi
}
eq() { if [ "$1" = "$2" ]; then ok; else fail "$3: got '$1', want '$2'"; fi; }
points() { "$CAIRN" info --json "$1" | sed -n "s/.*\"name\":\"$2\",\"id\":[0-9]*,\"dim\":[0-9]*,\"metric\":\"[a-z0-9]*\",\"points\":\([0-9]*\).*/\1/p"; }

echo "== usage and help"
run 0 "$CAIRN" --help; has out.txt "cairn import"
run 0 "$CAIRN" import --help; has out.txt "--batch"
run 2 "$CAIRN"
run 2 "$CAIRN" nosuchcommand; has err.txt "unknown command"
run 2 "$CAIRN" create db c; has err.txt "--dim is required"
run 2 "$CAIRN" create db c --dim 0
run 2 "$CAIRN" create db c --dim 3 --metric manhattan
run 2 "$CAIRN" search db c --vector '[1]' --bogus; has err.txt "unknown option '--bogus'"
run 2 "$CAIRN" search db c --vector '[1]' -k; has err.txt "needs a value"
run 2 "$CAIRN" search db c; has err.txt "exactly one of"
run 0 "$PITRCTL" --help; has out.txt "waldump"
run 0 "$PITRCTL" waldump --help; has out.txt "--collection"
run 2 "$PITRCTL" nosuchcommand
run 2 "$PITRCTL" waldump db --from zz
run 1 "$CAIRN" info nodb; has err.txt "nodb"
[ ! -e nodb ] && ok || fail "info created a database"
for c in drop restore-point checkpoint switch-wal; do
    run 0 "$CAIRN" $c --help; has out.txt "usage: cairn $c DB"
done
run 2 "$CAIRN" checkpoint; has err.txt "expected DB"
run 2 "$CAIRN" drop db; has err.txt "expected DB and COLLECTION"
run 1 "$CAIRN" checkpoint nodb; has err.txt "nodb"
for c in archive backup list restore verify expire; do
    run 0 "$PITRCTL" $c --help; has out.txt "usage: pitrctl $c"
    run 2 "$PITRCTL" $c --bogus; has err.txt "unknown or incomplete option '--bogus'"
done
run 2 "$PITRCTL" backup db repo --level 40; has err.txt "--level: '40' is not 1..19"
for c in archive backup; do
    run 0 "$PITRCTL" $c --help; has out.txt "[--wal-level N]"; has out.txt "--wal-level N    zstd level (-7..-1"
    for l in 0 20 -8 -0 +3 fast 1.5 ''; do
        run 2 "$PITRCTL" $c db repo --wal-level "$l"; has err.txt "--wal-level: '$l' is not -7..-1 or 1..19"
    done
    run 2 "$PITRCTL" $c db repo --wal-level=99; has err.txt "--wal-level: '99' is not -7..-1 or 1..19"
    run 2 "$PITRCTL" $c db repo --wal-level; has err.txt "unknown or incomplete option '--wal-level'"
done
[ ! -e repo ] && ok || fail "a refused --wal-level made the repository"

echo "== gen-synthetic and cat"
run 0 "$CAIRN" gen-synthetic a.fvecs --n 50 --dim 8 --seed 7
run 0 "$CAIRN" gen-synthetic b.fvecs --n 50 --dim 8 --seed 7
cmp -s a.fvecs b.fvecs && ok || fail "same seed, different bytes"
run 0 "$CAIRN" gen-synthetic c.fvecs --n 50 --dim 8 --seed 8
cmp -s a.fvecs c.fvecs && fail "different seeds, same bytes" || ok
eq "$(stat -c %s a.fvecs)" $((50 * (4 + 8 * 4))) "fvecs size"
run 0 "$CAIRN" gen-synthetic a.npy --n 50 --dim 8 --seed 7
run 0 "$CAIRN" cat a.fvecs; cp out.txt a.fvecs.jsonl
run 0 "$CAIRN" cat a.npy
cmp -s out.txt a.fvecs.jsonl && ok || fail "npy and fvecs of one seed differ"
eq "$(wc -l < a.fvecs.jsonl)" 50 "cat rows"
run 0 "$CAIRN" cat a.fvecs.jsonl --format jsonl
cmp -s out.txt a.fvecs.jsonl && ok || fail "jsonl round trip"
run 0 "$CAIRN" cat a.fvecs --row 49 --start-id 1000; has out.txt '{"id":1049,'; has out.txt '"payload":{"row":49}'
run 2 "$CAIRN" cat a.fvecs.jsonl --start-id 5; has err.txt "carry their own ids"
gzip -c a.fvecs > g.fvecs.gz
run 0 "$CAIRN" cat g.fvecs.gz
cmp -s out.txt a.fvecs.jsonl && ok || fail ".gz differs"
head -c 300 g.fvecs.gz > trunc.fvecs.gz
run 1 "$CAIRN" cat trunc.fvecs.gz; has err.txt 'trunc.fvecs.gz'

echo "== malformed binary input"
head -c 100 a.fvecs > t1.fvecs
run 1 "$CAIRN" cat t1.fvecs; has err.txt 'could not read "t1.fvecs" at row 2 (offset 72): file ends inside the row'
sed 's/<f4/<f8/' a.npy > f8.npy
run 1 "$CAIRN" cat f8.npy; has err.txt "dtype '<f8' is not supported"
sed "s/'fortran_order': False/'fortran_order': True /" a.npy > fo.npy
run 1 "$CAIRN" cat fo.npy; has err.txt "Fortran order"
sed "s/'shape': (50, 8), }/'shape': (400,),  }/" a.npy > d1.npy
run 1 "$CAIRN" cat d1.npy; has err.txt "has 1 dimensions"
head -c 200 a.npy > short.npy
run 1 "$CAIRN" cat short.npy; has err.txt "needs 1600 data bytes"
printf 'hello\n' > what.bin
run 1 "$CAIRN" cat what.bin; has err.txt "pass --format"

echo "== IDX with and without labels"
byte() { printf "\\x$(printf %02x "$1")"; }
be32() { byte 0; byte 0; byte $(($1 / 256)); byte $(($1 % 256)); }
idx_images() { # NAME ROWS: ROWS images of 2x2 pixels, pixel i of row r = 4r + i
    { printf '\x00\x00\x08\x03'; be32 "$2"; be32 2; be32 2
      for ((r = 0; r < $2; r++)); do for i in 0 1 2 3; do byte $((r * 4 + i)); done; done; } > "$1"
}
idx_labels() { # NAME LABEL...
    local n=$1; shift
    { printf '\x00\x00\x08\x01'; be32 $#
      for l in "$@"; do byte "$l"; done; } > "$n"
}
idx_images tiny-images-idx3-ubyte 6
idx_labels tiny-labels-idx1-ubyte 3 1 4 1 5 9
run 0 "$CAIRN" cat tiny-images-idx3-ubyte --row 5; has out.txt '{"id":5,"vector":[20,21,22,23],"payload":{"label":9}}'
gzip -k tiny-images-idx3-ubyte
run 0 "$CAIRN" cat tiny-images-idx3-ubyte.gz --row 4; has out.txt '"payload":{"label":5}'
idx_images lone-images-idx3-ubyte 2
run 0 "$CAIRN" cat lone-images-idx3-ubyte; has out.txt '"payload":{"row":1}'
idx_labels odd-labels-idx1-ubyte 1 2
idx_images odd-images-idx3-ubyte 3
run 0 "$CAIRN" cat odd-images-idx3-ubyte; has err.txt "warning: labels file"; has out.txt '{"row":2}'

echo "== create, import, search, info"
run 0 "$CAIRN" create db v8 --dim 8; has out.txt 'created collection "v8"'
run 1 "$CAIRN" create db v8 --dim 8
run 0 "$CAIRN" import db v8 a.fvecs --batch 16; has err.txt "imported 50 points"
eq "$(points db v8)" 50 "points after import"
run 1 "$CAIRN" import db v8 tiny-images-idx3-ubyte; has err.txt "collection \"v8\" has dimension 8"
run 1 "$CAIRN" import db nosuch a.fvecs
run 0 "$CAIRN" search db v8 --vector-file a.fvecs --row 7 -k 3
eq "$(wc -l < out.txt)" 3 "hits"
has out.txt '{"id":7,"distance":0,"payload":{"row":7}}'
run 0 "$CAIRN" search db v8 --vector-file a.npy --row 7 -k 5 --filter '{"must":[{"key":"row","range":{"gte":40}}]}'
awk -F'"row":' '{ split($2, a, "}"); if (a[1] < 40) bad = 1 } END { exit bad }' out.txt && ok || fail "filter let through a row < 40"
run 1 "$CAIRN" search db v8 --vector '[1,2,3]'; has err.txt "has dimension 8"
run 1 "$CAIRN" search db v8 --vector '[1,2,3,4,5,6,7,"x"]'; has err.txt "element 7"
run 1 "$CAIRN" search db v8 --vector '[1,2,3,4,5,6,7,8]' --filter '{"must":3}'

run 0 "$CAIRN" create db tiny --dim 4 --metric l2
run 0 "$CAIRN" import db tiny tiny-images-idx3-ubyte.gz --start-id 100; has err.txt "labels from"
run 0 "$CAIRN" search db tiny --vector '[4,5,6,7]' -k 6 --filter '{"must":[{"key":"label","match":{"value":1}}]}'
eq "$(wc -l < out.txt)" 2 "label-1 hits"
has out.txt '{"id":101,"distance":0,"payload":{"label":1}}'

echo "== JSON lines: a malformed line stops the import, its batch is not applied"
run 0 "$CAIRN" create db j --dim 3
{ for i in $(seq 1 25); do echo "{\"id\":$i,\"vector\":[$i,1,2],\"payload\":{\"n\":$i}}"; done
  echo '{"id":26,"vector":[1,2]}'
  echo '{"id":27,"vector":[1,2,3]}'; } > bad.jsonl
run 1 "$CAIRN" import db j bad.jsonl --batch 10
has err.txt 'could not parse "bad.jsonl" at line 26'
has err.txt 'batch in progress (5 points, lines 21..25) was not applied'
has err.txt 'committed 20 points'
eq "$(points db j)" 20 "points after the failed import"
printf '{"id":1,"vector":[1,2,3],"paylod":{}}\n' > typo.jsonl
run 1 "$CAIRN" import db j typo.jsonl; has err.txt 'unknown key "paylod"'
printf '{"id":1,"vector":[1,2,3]}\n{"id":2,"vector":[1,2,3]\n' > trunc.jsonl
run 1 "$CAIRN" import db j trunc.jsonl; has err.txt 'at line 2, column'
run 0 "$CAIRN" import db j bad.jsonl --limit 12 --batch 5; has err.txt "imported 12 points"
gzip -c bad.jsonl | head -c 120 > bad.jsonl.gz
run 1 "$CAIRN" import db j bad.jsonl.gz

echo "== restore points and waldump"
run 0 "$CAIRN" restore-point db rp-one
LSN=$(cat out.txt)
[[ $LSN =~ ^[0-9A-F]{16}$ ]] && ok || fail "restore-point printed '$LSN'"
run 1 "$CAIRN" restore-point db "bad/name"
run 0 "$PITRCTL" waldump db
has out.txt "$LSN RESTORE_POINT"
has out.txt 'name="rp-one"'
has out.txt 'CREATE_COLL   txn=1'
has err.txt "(clean end of log)"
ALL=$(wc -l < out.txt)
run 0 "$PITRCTL" waldump db --json
eq "$(wc -l < out.txt)" "$ALL" "json lines"
has out.txt "\"lsn_hex\":\"$LSN\",\"type\":\"RESTORE_POINT\""
run 0 "$PITRCTL" waldump db --from "$LSN"
eq "$(head -1 out.txt | cut -c1-16)" "$LSN" "--from"
run 0 "$PITRCTL" waldump db --to "$LSN"
eq "$(wc -l < out.txt)" $((ALL - 1)) "--to is exclusive"
has err.txt "stopped by --to at $LSN"
run 0 "$PITRCTL" waldump db --collection tiny; cp out.txt byname.txt
TINY_ID=$(sed -n 's/.*CREATE_COLL .*coll=\([0-9]*\) .*name="tiny".*/\1/p' byname.txt)
run 0 "$PITRCTL" waldump db --collection "$TINY_ID"
cmp -s out.txt byname.txt && ok || fail "--collection by name and by id differ"
eq "$(grep -c ' UPSERT ' byname.txt)" 6 "tiny upserts"
eq "$(grep -c ' COMMIT ' byname.txt)" 2 "tiny commits (create + import)"
grep -q 'RESTORE_POINT' byname.txt && ok || fail "restore point missing under --collection"
run 1 "$PITRCTL" waldump db --collection nosuch; has err.txt "no CREATE_COLL record"

echo "== torn tail and corruption"
cp -r db torn
SEG=$(ls torn/wal/*.wal | head -1)
"$PITRCTL" waldump torn >/dev/null 2>wd.err
END=$(sed -n 's/.*end LSN \([0-9A-F]\{16\}\).*/\1/p' wd.err)
printf 'garbage!' | dd of="$SEG" bs=1 seek=$((16#$END)) conv=notrunc 2>/dev/null
run 0 "$PITRCTL" waldump torn; has err.txt "(torn tail)"; has err.txt "torn tail at $END"
run 0 "$CAIRN" info torn; has out.txt "8 bytes truncated at $END"
run 0 "$PITRCTL" waldump torn; has err.txt "(clean end of log)"
cp -r db corrupt
SEG=$(ls corrupt/wal/*.wal | head -1)
# A byte inside the second record's body: the first segment starts at LSN 0,
# so its LSN is its file offset.
run 0 "$PITRCTL" waldump corrupt
REC2=$((16#$(sed -n 2p out.txt | cut -c1-16)))
printf '\xff' | dd of="$SEG" bs=1 seek=$((REC2 + 20)) conv=notrunc 2>/dev/null
run 1 "$PITRCTL" waldump corrupt; has err.txt "offset $REC2"

echo "== check"
run 0 "$CAIRN" check db; has err.txt ': 0 problems, 0 warnings'; has err.txt 'check of "db": checkpoint 0'
[ ! -s out.txt ] && ok || fail "a clean check printed findings"
run 0 "$CAIRN" check db --json; has out.txt '"ok":true'; has out.txt '"problem_count":0'; has out.txt '"problems":[]'
run 0 "$CAIRN" check --help; has out.txt "walks every page"
run 2 "$CAIRN" check; has err.txt "expected DB"
run 1 "$CAIRN" check nodb; has err.txt "nodb"
# a torn slot of a superblock that never held a checkpoint: a warning
cp -r db sbtorn
dd if=/dev/zero of=sbtorn/superblock bs=8192 count=2 2>/dev/null
printf 'garbage!' | dd of=sbtorn/superblock bs=1 seek=$((8192 + 100)) conv=notrunc 2>/dev/null
run 0 "$CAIRN" check sbtorn; has out.txt 'warning: superblock "sbtorn/superblock" slot 1 (offset 8192), not the current checkpoint, fails its checksum'
has err.txt ': 0 problems, 1 warning'
# a superblock file cut short: damage the open passes over, the check does not
printf 'xx' > sbtorn/superblock
run 1 "$CAIRN" check sbtorn; has out.txt 'problem: superblock "sbtorn/superblock" is 2 bytes, expected 16384'
run 1 "$CAIRN" check sbtorn --json; has out.txt '"ok":false'; has out.txt '"problem_count":1'
# a damaged WAL record followed by durable ones: the open refuses, naming it
run 1 "$CAIRN" check corrupt; has err.txt "offset $REC2"

echo "== SIGKILL in the middle of an import keeps whole batches"
run 0 "$CAIRN" gen-synthetic big.fvecs --n 40000 --dim 128 --seed 3
run 0 "$CAIRN" create db big --dim 128
"$PITRCTL" waldump db >/dev/null 2>wd.err
END=$(sed -n 's/.*end LSN \([0-9A-F]\{16\}\).*/\1/p' wd.err)
"$CAIRN" import db big big.fvecs --batch 500 2>imp.err &
PID=$!
SEEN=0
LIVE_FAIL=0
DEADLINE=$((SECONDS + 120))
while kill -0 "$PID" 2>/dev/null && [ "$SEEN" -lt 10000 ] && [ "$SECONDS" -lt "$DEADLINE" ]; do
    # waldump against the live writer must never fail.
    "$PITRCTL" waldump db --from "$END" --json >wd.out 2>wd.err || { LIVE_FAIL=1; cat wd.err >&2; }
    n=$(sed -n 's/.*"type":"COMMIT".*"records":\([0-9]*\).*/\1/p' wd.out | awk '{ s += $1 } END { print s + 0 }')
    SEEN=$((SEEN + n))
    e=$(sed -n 's/.*end LSN \([0-9A-F]\{16\}\).*/\1/p' wd.err)
    [ -n "$e" ] && END=$e
done
if [ "$SECONDS" -ge "$DEADLINE" ]; then fail "import made no progress for 120 s (hung?)"; fi
kill -KILL "$PID" 2>/dev/null
wait "$PID" 2>/dev/null
eq "$LIVE_FAIL" 0 "waldump on a live database"
N=$(points db big)
echo "   killed after $SEEN points seen committed; $N points after recovery"
[ -n "$N" ] && [ $((N % 500)) -eq 0 ] && ok || fail "points after SIGKILL ($N) is not a multiple of the batch"
[ -n "$N" ] && [ "$N" -ge "$SEEN" ] && ok || fail "lost committed points: $N < $SEEN"
run 0 "$CAIRN" info db; has out.txt "recovery (this open):"

echo "== point-in-time recovery"
# A database archived continuously (cairn --archive), two backups, a
# restore point before a drop, then restores to every kind of target; the
# refusals and usage errors; verify and expire on the repository.
HAVE_PY=0; command -v python3 >/dev/null && HAVE_PY=1
# jsonl FILE: every line of FILE is valid JSON (skipped without python3).
jsonl() {
    [ "$HAVE_PY" -eq 1 ] || return 0
    if python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' < "$1"; then ok; else
        fail "$1 is not JSON lines"
    fi
}
# tree DIR: every file below DIR with its size and checksum, sorted.
tree() { find "$1" -type f -exec cksum {} + | sort -k3; }
T0=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
run 0 "$CAIRN" gen-synthetic p.fvecs --n 300 --dim 16 --seed 11
run 0 "$CAIRN" --archive prepo create pdb pv --dim 16
[ -f prepo/repo.json ] && ok || fail "--archive did not create the repository"
run 0 "$CAIRN" --archive prepo import pdb pv p.fvecs --batch 50
run 0 "$CAIRN" --archive prepo checkpoint pdb; has out.txt "checkpoint 1 at redo LSN"
run 0 "$PITRCTL" backup pdb prepo; has out.txt "(full)"
FULL=$(sed -n 's/^backup \([^ ]*\) (full).*/\1/p' out.txt)
[[ $FULL =~ ^[0-9]{8}T[0-9]{6}-[0-9]{6}Z-F$ ]] && ok || fail "backup id '$FULL'"
run 0 "$CAIRN" --archive prepo create pdb gone --dim 8
run 0 "$CAIRN" --archive prepo import pdb gone a.fvecs --batch 20
run 0 "$CAIRN" --archive prepo checkpoint pdb
run 0 "$PITRCTL" backup pdb prepo --incremental --json; jsonl out.txt
has out.txt '"type":"incr"'; has out.txt "\"parent\":\"$FULL\""
INCR=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' out.txt)
[[ $INCR =~ -I$ ]] && ok || fail "incremental id '$INCR'"
run 0 "$CAIRN" --archive prepo restore-point pdb before-drop; RP=$(cat out.txt)
TB=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
run 0 "$CAIRN" --archive prepo drop pdb gone
run 0 "$PITRCTL" list prepo; has out.txt "timeline 1: 0 WAL segments archived"
has out.txt "recoverable: the state of backup $FULL only"
# the segment being written is archived once closed: switch-wal does it
run 0 "$CAIRN" --archive prepo switch-wal pdb; has out.txt "closed the WAL segment"
run 0 "$CAIRN" --archive prepo switch-wal pdb; has out.txt "nothing to close"
run 0 "$PITRCTL" list prepo; has out.txt "2 backups"; has out.txt "timeline 1: 1 WAL segments archived"
has out.txt "backup $INCR  incr"; has out.txt "parent $FULL"; has out.txt "recoverable:"
run 0 "$PITRCTL" list prepo --json; jsonl out.txt; has out.txt "\"id\":\"$INCR\",\"type\":\"incr\""
# temporaries of cut puts (two hours old): list and verify leave them
# (their open walks no file), a writer (archive) removes them
TMPF=prepo/wal/cut.tmp-0123456789abcdef
echo partial > "$TMPF"; touch -d '2 hours ago' "$TMPF"
run 0 "$PITRCTL" list prepo; [ -f "$TMPF" ] && ok || fail "list removed a temporary"
run 0 "$PITRCTL" verify prepo; [ -f "$TMPF" ] && ok || fail "verify removed a temporary"
run 0 "$PITRCTL" archive pdb prepo; [ ! -e "$TMPF" ] && ok || fail "archive left a stale temporary"
# WAL levels: a new repository records -1, or the level it was created with
has prepo/repo.json '"wal_level": -1'; has prepo/repo.json '"level": 3,'
run 0 "$PITRCTL" archive pdb wrepo3 --wal-level 3; has out.txt "segments archived"
has wrepo3/repo.json '"wal_level": 3'
run 0 "$PITRCTL" archive pdb wrepo5 --wal-level=-5 --level 7
has wrepo5/repo.json '"wal_level": -5'; has wrepo5/repo.json '"level": 7,'
run 0 "$PITRCTL" archive pdb wrepo6 --wal-level -7; has wrepo6/repo.json '"wal_level": -7'
# given to an existing repository: used, not recorded
cp wrepo3/repo.json wrepo3.json
run 0 "$PITRCTL" archive pdb wrepo3 --wal-level -2 --level 9
cmp -s wrepo3.json wrepo3/repo.json && ok || fail "--wal-level on an existing repository changed repo.json"
# the cairn tool's own archiver: levels out of range are usage errors that
# create nothing; a repository it creates records the levels given
for l in 0 -8 20 x; do
    run 2 "$CAIRN" --archive crepo --archive-wal-level "$l" create cdb cv --dim 4
    has err.txt "--archive-wal-level: '$l' is not -7..-1 or 1..19"
done
run 2 "$CAIRN" --archive crepo --archive-level 0 create cdb cv --dim 4
has err.txt "--archive-level: '0' is not 1..19"
[ ! -e crepo ] && [ ! -e cdb ] && ok || fail "a refused archive level made something"
run 0 "$CAIRN" --help; has out.txt "--archive-wal-level N  zstd level (-7..-1"
run 0 "$CAIRN" --archive crepo --archive-wal-level -4 --archive-level 8 create cdb cv --dim 4
has crepo/repo.json '"wal_level": -4'; has crepo/repo.json '"level": 8,'
for w in wrepo3 wrepo5 wrepo6 crepo; do
    run 0 "$PITRCTL" verify $w; has err.txt ": 0 problems"
done
run 0 "$PITRCTL" waldump pdb --json
DROPTXN=$(sed -n 's/.*"type":"DROP_COLL","txn":\([0-9]*\).*/\1/p' out.txt)
[ -n "$DROPTXN" ] && ok || fail "no DROP_COLL in the WAL"

tree prepo > repo.before
run 0 "$PITRCTL" restore prepo r0 --target-name before-drop --dry-run
has out.txt "plan (dry run):"; has out.txt "base     $INCR"
[ ! -e r0 ] && [ ! -e r0.partial ] && ok || fail "a dry run wrote the target"
tree prepo > repo.after
cmp -s repo.before repo.after && ok || fail "a dry run changed the repository"
run 0 "$PITRCTL" restore prepo r1 --target-name before-drop; has out.txt "restored into r1: timeline 2"
eq "$(points r1 gone)" 50 "points of the dropped collection, restored by name"
eq "$(points r1 pv)" 300 "points of pv, restored by name"
run 0 "$CAIRN" info r1; eq "$(awk '$1 == "gone" { print $5 }' out.txt)" 50 "cairn info: points of gone"
# r1 started timeline 2, which archived nothing: the default still
# follows timeline 1 (the newest with archived WAL or a backup)
run 0 "$PITRCTL" restore prepo r2 --latest --json; jsonl out.txt
has out.txt '"event":"plan"'; has out.txt '"target_timeline":1,"new_timeline":3'; has out.txt '"event":"done"'
eq "$(points r2 gone)" "" "--latest: the drop is replayed"
eq "$(points r2 pv)" 300 "--latest: pv"
run 1 "$PITRCTL" restore prepo rx --latest --timeline 2; has err.txt "is not archived yet"
run 0 "$PITRCTL" restore prepo r4 --target-time "$TB"
eq "$(points r4 gone)" 50 "--target-time before the drop"
run 0 "$PITRCTL" restore prepo r5 --target-lsn "$RP" --timeline 1
eq "$(points r5 gone)" 50 "--target-lsn of the restore point"
run 0 "$PITRCTL" restore prepo r6 --target-txn "$DROPTXN" --exclusive
eq "$(points r6 gone)" 50 "--target-txn of the drop, exclusive"
run 0 "$PITRCTL" restore prepo r7 --target-txn "$DROPTXN"
eq "$(points r7 gone)" "" "--target-txn of the drop, inclusive"
run 0 "$PITRCTL" restore prepo r8 --backup "$FULL"; has out.txt "the base backup's state"
eq "$(points r8 pv)" 300 "--backup FULL: pv"; eq "$(points r8 gone)" "" "--backup FULL: no gone yet"
run 0 "$PITRCTL" restore prepo r9 --backup "$INCR"
eq "$(points r9 gone)" 50 "--backup INCR"
# the dropped collection back into the database itself: the others stay,
# the database goes on on a new timeline
run 2 "$PITRCTL" restore prepo pdb --target-name before-drop --into-existing
has err.txt "needs --collection"
run 0 "$PITRCTL" restore prepo pdb --target-name before-drop --collection gone --into-existing --dry-run
has out.txt "replaced in the existing database"; has out.txt "it leaves timeline 1"
[ ! -e pdb.replace ] && ok || fail "a dry run made the work directory"
run 0 "$PITRCTL" restore prepo pdb --target-name before-drop --collection gone --into-existing
has out.txt "replaced in pdb: 0 collection(s) replaced, 1 added, 50 point(s)"
has out.txt "left timeline 1 at LSN"
eq "$(points pdb gone)" 50 "--into-existing: the dropped collection is back"
eq "$(points pdb pv)" 300 "--into-existing: pv as it was"
[ ! -e pdb.replace ] && ok || fail "the work directory is left"
run 1 "$PITRCTL" restore prepo pdb --target-name before-drop --collection nosuch --into-existing
has err.txt "collection \"nosuch\" does not exist at the target"; has err.txt "it is as it was"
# refusals: exit 1 with the reason, nothing written
run 1 "$PITRCTL" restore prepo r1 --latest; has err.txt "exists"
run 1 "$PITRCTL" restore prepo rx --target-name nosuch; has err.txt "no restore point named"
run 1 "$PITRCTL" restore prepo rx --latest --timeline 99; has err.txt "knows no timeline"
run 1 "$PITRCTL" restore prepo rx --target-time "$T0"; has err.txt "before the earliest backup"
[ ! -e rx ] && [ ! -e rx.partial ] && ok || fail "a refused restore wrote its target"
# usage errors: exit 2
run 2 "$PITRCTL" restore prepo rx; has err.txt "give a target"
run 2 "$PITRCTL" restore prepo rx --latest --target-name before-drop; has err.txt "give one target"
run 2 "$PITRCTL" restore prepo rx --target-time yesterday; has err.txt "is not a time"
run 2 "$PITRCTL" expire prepo; has err.txt "--keep-full N is required"
# verify: clean, then a byte flipped in one blob (of a copy)
run 0 "$PITRCTL" verify prepo; has err.txt ": 0 problems, 0 gaps"
cp -r prepo pbad
BLOB=$(find pbad/blobs -type f | sort | head -1)
B=$(od -An -tu1 -j120 -N1 "$BLOB" | tr -d ' ')
byte $(((B + 1) % 256)) | dd of="$BLOB" bs=1 seek=120 conv=notrunc 2>/dev/null
run 1 "$PITRCTL" verify pbad; has out.txt "problem: "; has out.txt "$(basename "$BLOB")"
has err.txt ": 1 problems"
run 1 "$PITRCTL" verify pbad --json; jsonl out.txt; has out.txt '"problems":1'
# encrypted repositories: every command needs the key; a wrong or missing
# one is refused before anything is written; a changed byte is found
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > key.hex
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > other.hex
printf 'not a key\n' > bad.hex
run 1 "$PITRCTL" backup pdb erepo --key-file bad.hex; has err.txt "bad.hex"
[ ! -e erepo ] && ok || fail "a bad key file created the repository"
run 0 "$PITRCTL" backup pdb erepo --key-file key.hex; has out.txt "(full)"
has erepo/repo.json '"aes-256-gcm"'
run 0 "$PITRCTL" archive pdb erepo --key-file key.hex; has out.txt "segments archived"
run 1 "$PITRCTL" list erepo; has err.txt "is encrypted (key id"; has err.txt "--key-file"
run 1 "$PITRCTL" list erepo --key-file other.hex; has err.txt "the key given has id"
run 1 "$PITRCTL" archive pdb prepo --key-file key.hex; has err.txt "is not encrypted, but a key"
run 0 "$PITRCTL" list erepo --key-file key.hex; has out.txt "1 backups"
run 0 "$PITRCTL" verify erepo --key-file key.hex; has err.txt ": 0 problems, 0 gaps"
run 1 "$PITRCTL" restore erepo er1 --latest --key-file other.hex
[ ! -e er1 ] && [ ! -e er1.partial ] && ok || fail "a restore with the wrong key wrote its target"
run 0 "$PITRCTL" restore erepo er1 --latest --key-file key.hex; has out.txt "restored into er1"
eq "$(points er1 pv)" 300 "restore from the encrypted repository"
cp -r erepo ebad
EBLOB=$(find ebad/blobs -type f | sort | head -1)
B=$(od -An -tu1 -j120 -N1 "$EBLOB" | tr -d ' ')
byte $(((B + 1) % 256)) | dd of="$EBLOB" bs=1 seek=120 conv=notrunc 2>/dev/null
run 1 "$PITRCTL" verify ebad --key-file key.hex; has out.txt "$(basename "$EBLOB")"
has err.txt ": 1 problems"
# expire after a second full: a dry run changes nothing, then the real one
run 0 "$CAIRN" --archive prepo checkpoint pdb
run 0 "$PITRCTL" backup pdb prepo --json; jsonl out.txt; has out.txt '"type":"full"'
FULL2=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' out.txt)
tree prepo > repo.before
run 0 "$PITRCTL" expire prepo --keep-full 1 --dry-run; has out.txt "dry run: 1 backups kept, 2 deleted"
tree prepo > repo.after
cmp -s repo.before repo.after && ok || fail "expire --dry-run changed the repository"
run 0 "$PITRCTL" expire prepo --keep-full 1 --json; jsonl out.txt; has out.txt '"backups_deleted":2'
run 0 "$PITRCTL" verify prepo; has err.txt "verified 1 backups"
run 0 "$PITRCTL" restore prepo r10 --backup "$FULL2"
eq "$(points r10 pv)" 300 "--backup of the kept full after expire"
run 1 "$PITRCTL" restore prepo r11 --backup "$FULL"; has err.txt "$FULL"

echo "== $PASSES checks passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
