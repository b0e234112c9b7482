#!/usr/bin/env bash
# compare-load.sh — the same `wasmraft bench` workloads (put, linearizable and serializable
# range) against real etcd and against wasmraft (release build), one server at a time, on this
# machine in this run; prints a table with the wasmraft/etcd ratio.
#
# Usage: tests/scripts/compare-load.sh
# Env:
#   TOTAL=20000 CLIENTS=16 CONNS=1 KEY_SIZE=8 VAL_SIZE=256   workload shape
#   WASMRAFT_BIN=path     use this wasmraft as the server instead of target/release/wasmraft
#   BENCH_BIN=path        the wasmraft whose `bench` is the load generator (default: build
#                         target/release/wasmraft)
#   ETCD_BIN=path         real etcd (default: etcd on PATH)
#   WASMRAFT_TEST_SUBJECT=etcd   run a second real etcd as the subject (validates the script)
#   DATA_ROOT=dir         where the temp data dirs go (default: $TMPDIR or /tmp); both servers
#                         use the same file system, so fsync costs are comparable
#   KEEP=1                keep data dirs and logs
set -euo pipefail

cd "$(dirname "$0")/../.."
TOTAL=${TOTAL:-20000}
CLIENTS=${CLIENTS:-16}
CONNS=${CONNS:-1}
KEY_SIZE=${KEY_SIZE:-8}
VAL_SIZE=${VAL_SIZE:-256}
SUBJECT=${WASMRAFT_TEST_SUBJECT:-wasmraft}
LABEL=$SUBJECT; [ "$SUBJECT" = etcd ] && LABEL="etcd#2"

die() { echo "compare-load: $*" >&2; exit 1; }
# ETCD_BIN (checked), TARGET_DIR, READY_LINE, free_port, reap
# shellcheck source=tests/scripts/lib.sh
source tests/scripts/lib.sh

if [ -z "${BENCH_BIN:-}" ]; then
    echo "== building wasmraft (release; its bench subcommand is the load generator)"
    cargo build --release -q -p wasmraft
fi
BENCH=${BENCH_BIN:-$TARGET_DIR/release/wasmraft}
if [ "$SUBJECT" = etcd ]; then
    SUBJECT_BIN=$ETCD_BIN
else
    SUBJECT_BIN=${WASMRAFT_BIN:-$TARGET_DIR/release/wasmraft}
fi
[ -x "$SUBJECT_BIN" ] || die "$SUBJECT_BIN is not executable"
[ -x "$BENCH" ] || die "$BENCH is not executable"

ROOT=$(mktemp -d "${DATA_ROOT:-${TMPDIR:-/tmp}}/compare-load.XXXXXX")
PIDS=()
cleanup() {
    reap "${PIDS[@]}"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $ROOT"; else rm -rf "$ROOT"; fi
}
trap cleanup EXIT


# json_field NAME FILE: the number named NAME in bench's one-line JSON (for put and range there
# is one "qps" and one "p99", the latter in latency_us, in µs)
json_field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2" | head -1; }

# start NAME BIN -> sets URL_<NAME>; waits for the ready line
start() {
    local name=$1 bin=$2 cport pport dir
    cport=$(free_port); pport=$(free_port)
    dir="$ROOT/$name"; mkdir -p "$dir"
    "$bin" --name "$name" --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "$name=http://127.0.0.1:$pport" >"$dir/log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 600); do
        grep -q "$READY_LINE" "$dir/log" && { printf -v "URL_$name" '%s' "http://127.0.0.1:$cport"; return; }
        kill -0 "$pid" 2>/dev/null || { tail -50 "$dir/log" >&2; die "$name ($bin) exited before ready"; }
        sleep 0.1
    done
    tail -50 "$dir/log" >&2
    die "$name ($bin) not ready after 60s"
}

start etcd "$ETCD_BIN"
start subject "$SUBJECT_BIN"
echo "== etcd: $ETCD_BIN at $URL_etcd"
echo "== $LABEL: $SUBJECT_BIN at $URL_subject"

# put: TOTAL distinct keys, each written once; range: single keys of 1000 written first.
WORKLOADS=("put" "range --consistency l" "range --consistency s")
declare -A QPS P99
for w in "${WORKLOADS[@]}"; do
    space=1000; [ "$w" = put ] && space=$TOTAL
    for target in etcd subject; do
        url_var="URL_$target"
        name=$target; [ "$target" = subject ] && name=$LABEL
        echo "== $w against $name"
        json="$ROOT/$target.json"
        # shellcheck disable=SC2086
        out=$("$BENCH" bench $w --endpoints "${!url_var}" --clients "$CLIENTS" --conns "$CONNS" --total "$TOTAL" \
            --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space-size "$space" --sequential-keys \
            --no-progress --json "$json") || { echo "$out"; die "wasmraft bench $w against $name failed"; }
        echo "$out" | grep -E 'Total:|Requests/sec:|(50|99)% in' | sed 's/^ */   /'
        QPS["$w/$target"]=$(json_field qps "$json" | awk '{ printf "%.1f", $1 }')
        P99["$w/$target"]=$(json_field p99 "$json" | awk '{ printf "%.3f", $1 / 1000 }')
    done
done

echo
echo "total=$TOTAL clients=$CLIENTS conns=$CONNS key=${KEY_SIZE}B value=${VAL_SIZE}B"
printf '%-22s %12s %12s %8s %12s %12s\n' workload "etcd qps" "$LABEL qps" ratio "etcd p99ms" "$LABEL p99ms"
for w in "${WORKLOADS[@]}"; do
    e=${QPS["$w/etcd"]}; s=${QPS["$w/subject"]}
    ratio=$(awk -v s="$s" -v e="$e" 'BEGIN { if (e > 0) printf "%.2f", s / e; else print "n/a" }')
    printf '%-22s %12s %12s %8s %12s %12s\n' "$w" "$e" "$s" "$ratio" "${P99["$w/etcd"]}" "${P99["$w/subject"]}"
done
