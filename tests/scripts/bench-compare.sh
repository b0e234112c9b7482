#!/usr/bin/env bash
# bench-compare.sh — etcd 3.4 and wasmraft side by side (issue 8): for 1 and 3 members, each
# server in turn with the same flags, the same `wasmraft bench` workloads; every workload on a
# freshly started cluster with empty data dirs (so one workload's data and memory do not carry
# into the next, and each member's VmHWM is that workload's peak). Then `bench-report` turns the
# results into a markdown section, spliced into docs/benchmarks.md between
#   <!-- bench-compare:begin --> and <!-- bench-compare:end -->
# (the rest of the file is left alone), and docs/benchmarks-throughput.svg (put QPS vs clients).
#
# Usage: tests/scripts/bench-compare.sh
# Env:
#   MEMBERS="1 3"          cluster sizes
#   WORKLOADS="put range-l range-s txn-put watch-latency lease-keepalive"
#   SWEEP="1 4 16 64"      put clients for the plot ("" to skip)
#   TOTAL=20000            requests per workload (and per sweep point)
#   CLIENTS=16             clients per workload (the sweep varies this for put)
#   CONNS=                 gRPC connections (default: one per member)
#   KEY_SIZE=8 VAL_SIZE=256 TXN_OPS=4 RANGE_KEYS=1000
#   WATCHERS=100 WATCH_STREAMS=10 WATCH_PUT_TOTAL=1000 WATCH_PUT_RATE=100
#   HEARTBEAT=100 ELECTION=1000   both servers' --heartbeat-interval / --election-timeout
#   BUILD=release          which build serves and loads: release (built here unless
#                          WASMRAFT_BIN is given) or debug (target/debug, for validating the
#                          script only: never commit debug figures)
#   WASMRAFT_BIN=path      the wasmraft server (and bench load generator)
#   REPORT_BIN=path        the bench-report binary
#   ETCD_BIN=path          real etcd (default: etcd on PATH)
#   DATA_ROOT=dir          where data dirs go (default: $TMPDIR or /tmp); both servers use it
#   RESULTS=dir            keep the results (JSON per run) here (default: a temp dir, removed)
#   DOC=docs/benchmarks.md  splice the section into this file ("": print it only; the default
#                          with BUILD=debug)
#   SVG=docs/benchmarks-throughput.svg   the plot (default: beside DOC; without DOC, in the
#                          results dir)
#   NOTE="..."             a line for the report (e.g. what else ran on the machine)
#   KEEP=1                 keep data dirs and logs
set -euo pipefail

cd "$(dirname "$0")/../.."
MEMBERS=${MEMBERS:-"1 3"}
WORKLOADS=${WORKLOADS:-"put range-l range-s txn-put watch-latency lease-keepalive"}
SWEEP=${SWEEP-"1 4 16 64"}
TOTAL=${TOTAL:-20000}
CLIENTS=${CLIENTS:-16}
CONNS=${CONNS:-}
KEY_SIZE=${KEY_SIZE:-8}
VAL_SIZE=${VAL_SIZE:-256}
TXN_OPS=${TXN_OPS:-4}
RANGE_KEYS=${RANGE_KEYS:-1000}
WATCHERS=${WATCHERS:-100}
WATCH_STREAMS=${WATCH_STREAMS:-10}
WATCH_PUT_TOTAL=${WATCH_PUT_TOTAL:-1000}
WATCH_PUT_RATE=${WATCH_PUT_RATE:-100}
HEARTBEAT=${HEARTBEAT:-100}
ELECTION=${ELECTION:-1000}
BUILD=${BUILD:-release}
# A debug build's figures never go into the docs unless asked for explicitly.
if [ "$BUILD" = release ]; then DOC=${DOC-docs/benchmarks.md}; else DOC=${DOC-}; fi

die() { echo "bench-compare: $*" >&2; exit 1; }
# ETCD_BIN (checked), TARGET_DIR, READY_LINE, free_port, reap
# shellcheck source=tests/scripts/lib.sh
source tests/scripts/lib.sh
case "$BUILD" in
    release) PROFILE_FLAG=--release ;;
    debug) PROFILE_FLAG= ;;
    *) die "BUILD must be release or debug" ;;
esac
if [ -z "${WASMRAFT_BIN:-}" ] || [ -z "${REPORT_BIN:-}" ]; then
    echo "== building wasmraft and bench-report ($BUILD)"
    # shellcheck disable=SC2086
    cargo build $PROFILE_FLAG -q -p wasmraft -p wasmraft-tests --bin wasmraft --bin bench-report
fi
WASMRAFT=${WASMRAFT_BIN:-$TARGET_DIR/$BUILD/wasmraft}
REPORT=${REPORT_BIN:-$TARGET_DIR/$BUILD/bench-report}
[ -x "$WASMRAFT" ] || die "$WASMRAFT is not executable"
[ -x "$REPORT" ] || die "$REPORT is not executable"

ROOT=$(mktemp -d "${DATA_ROOT:-${TMPDIR:-/tmp}}/bench-compare.XXXXXX")
OUT=${RESULTS:-$ROOT/results}
mkdir -p "$OUT"
if [ -n "$DOC" ]; then SVG=${SVG:-$(dirname "$DOC")/benchmarks-throughput.svg}; else SVG=${SVG:-$OUT/throughput.svg}; fi
PID=()
cleanup() {
    reap "${PID[@]}"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $ROOT"; else rm -rf "$ROOT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# start_cluster SERVER N: a new N-member cluster of SERVER (etcd|wasmraft) with empty data dirs,
# all members spawned before any is waited for; sets PID, EP, ENDPOINTS
RUN=0
start_cluster() {
    local server=$1 n=$2 bin i dir initial="" cports=() pports=()
    bin=$ETCD_BIN; [ "$server" = wasmraft ] && bin=$WASMRAFT
    RUN=$((RUN + 1))
    PID=(); EP=()
    for i in $(seq 0 $((n - 1))); do
        cports[i]=$(free_port); pports[i]=$(free_port)
        initial="$initial${initial:+,}m$i=http://127.0.0.1:${pports[i]}"
    done
    for i in $(seq 0 $((n - 1))); do
        dir="$ROOT/run$RUN-$server-m$i"
        mkdir -p "$dir"
        EP[i]="http://127.0.0.1:${cports[i]}"
        "$bin" --name "m$i" --data-dir "$dir/data" \
            --listen-client-urls "${EP[i]}" --advertise-client-urls "${EP[i]}" \
            --listen-peer-urls "http://127.0.0.1:${pports[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pports[i]}" \
            --initial-cluster "$initial" --initial-cluster-token "bench-compare-$RUN" --initial-cluster-state new \
            --heartbeat-interval "$HEARTBEAT" --election-timeout "$ELECTION" >"$dir/log" 2>&1 &
        PID[i]=$!
    done
    for i in $(seq 0 $((n - 1))); do
        dir="$ROOT/run$RUN-$server-m$i"
        for _ in $(seq 600); do
            grep -q "$READY_LINE" "$dir/log" && continue 2
            kill -0 "${PID[i]}" 2>/dev/null || { tail -50 "$dir/log" >&2; die "$server m$i exited before ready"; }
            sleep 0.1
        done
        tail -50 "$dir/log" >&2
        die "$server m$i not ready after 60s"
    done
    local IFS=,
    ENDPOINTS="${EP[*]}"
}

# stop_cluster: kill -9 every member, remove its data dir (unless KEEP=1)
stop_cluster() {
    reap "${PID[@]}"
    PID=()
    [ "${KEEP:-0}" = 1 ] || rm -rf "$ROOT"/run"$RUN"-*/data
}

# rss FILE: each member's VmHWM (peak resident set since it started, KiB) into FILE as JSON
rss() {
    local p kib list="" sum=0
    for p in "${PID[@]}"; do
        kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        [ -n "$kib" ] || die "member pid $p gone before its RSS was read"
        list="$list${list:+,}$kib"
        sum=$((sum + kib))
    done
    printf '{"field":"VmHWM","total_kib":%d,"members_kib":[%s]}\n' "$sum" "$list" >"$1"
}

# bench NAME ARGS...: wasmraft bench into $OUT/$PREFIX-NAME.json (exit 1, some requests failed,
# is recorded, not fatal: the report shows the errors)
bench() {
    local name=$1 rc=0 out
    shift
    out=$("$WASMRAFT" bench "$@" --endpoints "$ENDPOINTS" --conns "$CONNS_N" --no-progress \
        --json "$OUT/$PREFIX-$name.json" 2>&1) || rc=$?
    echo "$out" | grep -E 'Requests/sec:|(50|99)% in' | head -3 | sed 's/^ */     /' || true
    [ "$rc" -le 1 ] || { echo "$out" >&2; die "wasmraft bench $* against $PREFIX failed (exit $rc)"; }
    [ "$rc" = 0 ] || echo "     (some requests failed; counted in the JSON)"
}

# run_workload NAME: one workload on a fresh cluster, then its members' RSS
run_workload() {
    local w=$1 clients=${2:-$CLIENTS} name=${3:-$1}
    start_cluster "$SERVER" "$N"
    echo "  -- $SERVER, $N member(s): $name"
    local shape=(--clients "$clients" --total "$TOTAL" --key-size "$KEY_SIZE" --val-size "$VAL_SIZE")
    case "$w" in
        put) bench "$name" put "${shape[@]}" --key-space-size "$TOTAL" --sequential-keys ;;
        range-l | range-s)
            bench "$name" range "${shape[@]}" --key-space-size "$RANGE_KEYS" --sequential-keys --consistency "${w#range-}" ;;
        txn-put) bench "$name" txn-put "${shape[@]}" --txn-ops "$TXN_OPS" --key-space-size "$TOTAL" --sequential-keys ;;
        watch-latency)
            bench "$name" watch-latency --watchers "$WATCHERS" --streams "$WATCH_STREAMS" \
                --put-total "$WATCH_PUT_TOTAL" --put-rate "$WATCH_PUT_RATE" --val-size "$VAL_SIZE" ;;
        lease-keepalive) bench "$name" lease-keepalive --clients "$clients" --total "$TOTAL" ;;
        *) die "unknown workload $w" ;;
    esac
    rss "$OUT/$PREFIX-$name.rss.json"
    stop_cluster
}

# The run's settings and machine facts for the report (key=value lines).
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
    echo "build=$BUILD"
    echo "command=MEMBERS=\"$MEMBERS\" TOTAL=$TOTAL CLIENTS=$CLIENTS SWEEP=\"$SWEEP\" VAL_SIZE=$VAL_SIZE${CONNS:+ CONNS=$CONNS}$([ "$BUILD" = release ] || echo " BUILD=$BUILD") tests/scripts/bench-compare.sh"
    echo "etcd_version=$("$ETCD_BIN" --version 2>/dev/null | sed -n 's/^etcd Version: //p')"
    echo "wasmraft_version=$("$WASMRAFT" --version 2>/dev/null | sed -n "s/^wasmraft Version: //p")"
    echo "members=$MEMBERS"
    echo "workloads=$WORKLOADS"
    echo "sweep=$SWEEP"
    echo "total=$TOTAL"
    echo "clients=$CLIENTS"
    echo "conns=${CONNS:+$CONNS connection(s)}${CONNS:-one connection per member}"
    echo "key_size=$KEY_SIZE"
    echo "val_size=$VAL_SIZE"
    echo "txn_ops=$TXN_OPS"
    echo "range_keys=$RANGE_KEYS"
    echo "watch=$WATCHERS watchers on $WATCH_STREAMS streams, $WATCH_PUT_TOTAL puts at $WATCH_PUT_RATE/s"
    echo "raft=--heartbeat-interval $HEARTBEAT --election-timeout $ELECTION, default --snapshot-count"
    echo "data_fs=$(df -PT "$ROOT" | awk 'NR == 2 { print $2 " on " $1 }')"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "note=${NOTE:-}"
} >"$OUT/meta.txt"

for N in $MEMBERS; do
    CONNS_N=${CONNS:-$N}
    for SERVER in etcd wasmraft; do
        PREFIX="m$N-$SERVER"
        echo "== $SERVER, $N member(s)"
        for w in $WORKLOADS; do run_workload "$w"; done
        for c in $SWEEP; do run_workload put "$c" "sweep-c$c"; done
    done
done
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"

SECTION="$ROOT/section.md"
"$REPORT" --results "$OUT" --markdown "$SECTION" --svg "$SVG" --svg-link "$(basename "$SVG")"
if [ -z "$DOC" ]; then
    cat "$SECTION"
    if [ -n "${RESULTS:-}" ]; then echo "== plot: $SVG"; else echo "== plot: none kept (set RESULTS=dir to keep it and the JSON)"; fi
    exit 0
fi
BEGIN="<!-- bench-compare:begin -->"
END="<!-- bench-compare:end -->"
if ! grep -qF "$BEGIN" "$DOC"; then
    # First run: the markers go at the end of the file.
    printf '\n%s\n%s\n' "$BEGIN" "$END" >>"$DOC"
fi
awk -v begin="$BEGIN" -v end="$END" -v section="$SECTION" '
    $0 == begin { print; while ((getline line < section) > 0) print line; skip = 1; next }
    $0 == end { skip = 0 }
    !skip { print }
' "$DOC" >"$ROOT/doc.md"
cp "$ROOT/doc.md" "$DOC"
echo "== wrote $DOC (between the bench-compare markers) and $SVG"
