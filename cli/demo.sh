#!/usr/bin/env bash
# demo.sh BUILD_DIR — cairn in two minutes: import Fashion-MNIST with
# continuous WAL archiving, SIGKILL the import halfway and watch recovery
# bring back exactly the committed batches; take a base backup, keep
# writing, set a restore point, "accidentally" drop the collection, and
# bring it back with point-in-time recovery (pitrctl restore --target-name,
# then --target-time), then search it with a payload filter.
#
#   meson setup build && ninja -C build && cli/demo.sh build
#
# Uses /usr/share/datasets/fashion-mnist (Debian package
# dataset-fashion-mnist) when present, else a seeded synthetic .fvecs of
# 60000 x 784 made by `cairn gen-synthetic` (CAIRN_DEMO_FASHION_MNIST=DIR
# points elsewhere). Works in a temporary directory,
# removed at the end unless CAIRN_DEMO_KEEP=1.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: $0 BUILD_DIR   (e.g. meson setup build && ninja -C build && $0 build)" >&2
    exit 2
fi
for b in cairn pitrctl; do
    if [ ! -x "$1/cli/$b" ]; then
        echo "demo: $1/cli/$b not found; build first: meson setup $1 && ninja -C $1" >&2
        exit 1
    fi
done
BUILD=$(cd "$1" && pwd)
PATH=$BUILD/cli:$PATH

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-demo.XXXXXX")
cleanup() {
    if [ -n "${IMPORT_PID:-}" ]; then kill -KILL "$IMPORT_PID" 2>/dev/null || true; fi
    if [ "${CAIRN_DEMO_KEEP:-0}" = 1 ]; then
        echo "demo: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
cd "$TMP"
DB=db
echo "demo: working in $TMP"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Prints the command (arguments with shell characters in single quotes),
# then runs it.
show() {
    printf '$'
    for a in "$@"; do
        if [[ $a =~ [^A-Za-z0-9_./:=,+-] ]]; then printf " '%s'" "$a"; else printf ' %s' "$a"; fi
    done
    printf '\n'
    "$@"
}

FM=${CAIRN_DEMO_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ -r "$FM/train-images-idx3-ubyte.gz" ] && [ -r "$FM/t10k-images-idx3-ubyte.gz" ]; then
    DATA=$FM/train-images-idx3-ubyte.gz
    QUERY_FILE=$FM/t10k-images-idx3-ubyte.gz
    TOTAL=60000
else
    step "Fashion-MNIST not found in $FM: generating synthetic data"
    DATA=synthetic.fvecs
    show cairn gen-synthetic "$DATA" --n 60000 --dim 784 --seed 42
    QUERY_FILE=$DATA
    TOTAL=60000
fi

REPO=backups
# Every cairn command below that opens the database archives its WAL into
# REPO as it goes (a background thread; segments are kept until archived).
ARCH=(--archive "$REPO" --archive-timeout 1)

step "Create a database and a collection of 784-dimensional vectors (L2)"
show cairn "${ARCH[@]}" create "$DB" fashion --dim 784 --metric l2

# The end of the log after the create: the poller below reads only what the
# import appends after it.
end_lsn() { sed -n 's/.*end LSN \([0-9A-F]\{16\}\).*/\1/p' "$1"; }
pitrctl waldump "$DB" >/dev/null 2>wd.err
END=$(end_lsn wd.err)

step "Import $(basename "$DATA") in the background, 1000 points per transaction"
echo "\$ cairn ${ARCH[*]} import $DB fashion $DATA --batch 1000 &"
cairn "${ARCH[@]}" import "$DB" fashion "$DATA" --batch 1000 2>import.err &
IMPORT_PID=$!

# Watch the WAL from outside with pitrctl waldump (read-only, no lock, works
# while the importer has the database open): sum the record counts of the
# COMMIT records, i.e. the points committed, and SIGKILL the importer once
# half of the points are committed.
HALF=$((TOTAL / 2))
COMMITTED=0
while kill -0 "$IMPORT_PID" 2>/dev/null && [ "$COMMITTED" -lt "$HALF" ]; do
    n=$(pitrctl waldump "$DB" --from "$END" --json 2>wd.err |
        sed -n 's/.*"type":"COMMIT".*"records":\([0-9]*\).*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')
    e=$(end_lsn wd.err)
    if [ -n "$e" ]; then END=$e; fi
    COMMITTED=$((COMMITTED + n))
    sleep 0.05
done
if kill -KILL "$IMPORT_PID" 2>/dev/null; then
    wait "$IMPORT_PID" 2>/dev/null || true
    IMPORT_PID=
    echo "SIGKILL sent to the importer; its last poll of the WAL had seen $COMMITTED of $TOTAL points committed"
    echo "(recovery below finds every commit that reached the WAL, also any made after that poll)"
else
    wait "$IMPORT_PID" 2>/dev/null || true
    IMPORT_PID=
    echo "the import ended before the kill (the machine is fast); its summary:"
    cat import.err
fi

step "The WAL as the killed process left it (tail; read-only, nothing repaired)"
echo "\$ pitrctl waldump $DB --from $END | tail -4"
pitrctl waldump "$DB" --from "$END" 2>wd.err | tail -4
cat wd.err

step "Open the database: crash recovery replays the WAL"
show cairn "${ARCH[@]}" info "$DB"

step "A checkpoint, and a base backup of it (online: writers could go on)"
show cairn "${ARCH[@]}" checkpoint "$DB"
show pitrctl backup "$DB" "$REPO"

step "Keep writing: the test images go into a second collection"
show cairn "${ARCH[@]}" create "$DB" fashion-test --dim 784 --metric l2
show cairn "${ARCH[@]}" import "$DB" fashion-test "$QUERY_FILE" --batch 1000 --limit 5000

step "A named restore point, then an accident"
show cairn "${ARCH[@]}" restore-point "$DB" before-cleanup
sleep 1.1
BEFORE=$(date -u +%Y-%m-%dT%H:%M:%S)
sleep 1.1
show cairn "${ARCH[@]}" drop "$DB" fashion
show cairn "${ARCH[@]}" info "$DB"

step "Close the WAL segment so the archiver takes the tail (cf. pg_switch_wal)"
show cairn "${ARCH[@]}" switch-wal "$DB"
show pitrctl list "$REPO"

step "Point-in-time recovery to the restore point, into a new directory"
show pitrctl restore "$REPO" restored --target-name before-cleanup --jobs 2
show cairn info restored

step "The same, by time: every commit up to $BEFORE (UTC)"
show pitrctl restore "$REPO" restored-by-time --target-time "$BEFORE"
show cairn info restored-by-time

DB=restored

if [ "$QUERY_FILE" = "$DATA" ]; then
    step "Search: the 5 nearest neighbours of row 0 of the data"
    # Synthetic data carries {"row": N}: filter on it.
    show cairn search "$DB" fashion --vector-file "$QUERY_FILE" --row 0 -k 5
    step "Same query, only points from rows 1000..9999 (payload filter)"
    show cairn search "$DB" fashion --vector-file "$QUERY_FILE" --row 0 -k 5 \
        --filter '{"must":[{"key":"row","range":{"gte":1000,"lt":10000}}]}'
else
    step "Search: the 5 nearest neighbours of the first test image"
    LABEL=$(cairn cat "$QUERY_FILE" --limit 1 |
        sed -n 's/.*"payload":{"label":\([0-9]*\)}.*/\1/p')
    CLASSES=(T-shirt/top Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot")
    echo "(the test image is label ${LABEL:-?}: ${CLASSES[${LABEL:-0}]})"
    show cairn search "$DB" fashion --vector-file "$QUERY_FILE" --row 0 -k 5
    OTHER=$(( (${LABEL:-0} + 2) % 10 ))
    step "Same query, only points labelled $OTHER: ${CLASSES[$OTHER]} (payload filter)"
    show cairn search "$DB" fashion --vector-file "$QUERY_FILE" --row 0 -k 5 \
        --filter "{\"must\":[{\"key\":\"label\",\"match\":{\"value\":$OTHER}}]}"
fi

step "Done"
echo "pitrctl waldump db --collection fashion   # every record of the collection, the drop included"
echo "pitrctl verify $REPO                      # check every backup and archived segment"
