#!/usr/bin/env bash
# compare-cluster.sh — a 3-member real etcd cluster vs a 3-member wasmraft cluster (release build),
# one cluster at a time, on this machine in this run, same flags, same load tools:
#   1. put throughput and p99 latency (`wasmraft bench put`, connections spread over all three
#      members' endpoints);
#   2. leader failover: kill -9 of the leader to the first successful put through a survivor
#      (`kvload status` finds the leader, `kvload failover` times it), TRIALS times per cluster
#      (the killed member is restarted from its data dir between trials).
# Prints a table with the wasmraft/etcd ratio. Figures only: nothing here asserts anything.
#
# Usage: tests/scripts/compare-cluster.sh
# Env:
#   TOTAL=20000 CLIENTS=16 CONNS=3 KEY_SIZE=8 VAL_SIZE=256   put workload shape (CONNS: at
#                         least 3, so that every member gets connections)
#   TRIALS=3              failover trials per cluster
#   WASMRAFT_BIN=path     use this wasmraft instead of building target/release/wasmraft
#   ETCD_BIN=path         real etcd (default: etcd on PATH)
#   WASMRAFT_TEST_SUBJECT=etcd   run a second real etcd cluster as the subject (validates the script)
#   DATA_ROOT=dir         where the temp data dirs go (default: $TMPDIR or /tmp)
#   KEEP=1                keep data dirs and logs
set -euo pipefail

cd "$(dirname "$0")/../.."
TOTAL=${TOTAL:-20000}
CLIENTS=${CLIENTS:-16}
CONNS=${CONNS:-3}
KEY_SIZE=${KEY_SIZE:-8}
VAL_SIZE=${VAL_SIZE:-256}
TRIALS=${TRIALS:-3}
SUBJECT=${WASMRAFT_TEST_SUBJECT:-wasmraft}
LABEL=$SUBJECT; [ "$SUBJECT" = etcd ] && LABEL="etcd#2"

die() { echo "compare-cluster: $*" >&2; exit 1; }
# ETCD_BIN (checked), TARGET_DIR, READY_LINE, free_port, reap
# shellcheck source=tests/scripts/lib.sh
source tests/scripts/lib.sh

# wasmraft (its bench subcommand is the put load) and kvload (status, failover).
echo "== building wasmraft and kvload (release)"
cargo build --release -q -p wasmraft -p wasmraft-tests --bin wasmraft --bin kvload
BENCH="$TARGET_DIR/release/wasmraft"
if [ "$SUBJECT" = etcd ]; then
    SUBJECT_BIN=$ETCD_BIN
else
    SUBJECT_BIN=${WASMRAFT_BIN:-$BENCH}
fi
KVLOAD="$TARGET_DIR/release/kvload"
[ -x "$SUBJECT_BIN" ] || die "$SUBJECT_BIN is not executable"

ROOT=$(mktemp -d "${DATA_ROOT:-${TMPDIR:-/tmp}}/compare-cluster.XXXXXX")
N=3
PID=()    # per member of the current cluster
CMD=()    # per member: the command line (for restarts)
LOG=()
EP=()
cleanup() {
    reap "${PID[@]}"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $ROOT"; else rm -rf "$ROOT"; fi
}
trap cleanup EXIT


# launch I: starts member I from CMD[I], appending to LOG[I]
launch() {
    local i=$1
    echo "===== start: ${CMD[$i]}" >>"${LOG[$i]}"
    # shellcheck disable=SC2086
    ${CMD[$i]} >>"${LOG[$i]}" 2>&1 &
    PID[$i]=$!
}

# wait_ready I: waits for the ready line of member I's latest start
wait_ready() {
    local i=$1
    for _ in $(seq 600); do
        if sed -n '/^===== start/h; /^===== start/!H; ${x;p}' "${LOG[$i]}" | grep -q "$READY_LINE"; then
            return
        fi
        kill -0 "${PID[$i]}" 2>/dev/null || { tail -50 "${LOG[$i]}" >&2; die "member $i exited before ready"; }
        sleep 0.1
    done
    tail -50 "${LOG[$i]}" >&2
    die "member $i not ready after 60s"
}

# start_cluster NAME BIN: a new 3-member cluster, all spawned, then all waited for
start_cluster() {
    local name=$1 bin=$2 i cports=() pports=() initial=""
    PID=(); CMD=(); LOG=(); EP=()
    for i in $(seq 0 $((N - 1))); do
        cports[$i]=$(free_port); pports[$i]=$(free_port)
        initial="$initial${initial:+,}$name$i=http://127.0.0.1:${pports[$i]}"
    done
    for i in $(seq 0 $((N - 1))); do
        mkdir -p "$ROOT/$name$i"
        LOG[$i]="$ROOT/$name$i/log"
        EP[$i]="http://127.0.0.1:${cports[$i]}"
        CMD[$i]="$bin --name $name$i --data-dir $ROOT/$name$i/data \
--listen-client-urls ${EP[$i]} --advertise-client-urls ${EP[$i]} \
--listen-peer-urls http://127.0.0.1:${pports[$i]} --initial-advertise-peer-urls http://127.0.0.1:${pports[$i]} \
--initial-cluster $initial --initial-cluster-token compare-cluster-$name --initial-cluster-state new"
        launch "$i"
    done
    for i in $(seq 0 $((N - 1))); do wait_ready "$i"; done
}

stop_cluster() {
    reap "${PID[@]}"
    PID=()
}

all_endpoints() { local IFS=,; echo "${EP[*]}"; }

# leader: prints the index of the member all three name as leader (waits up to 30 s)
leader() {
    local out i
    for _ in $(seq 300); do
        if out=$("$KVLOAD" status --endpoints "$(all_endpoints)" 2>/dev/null); then
            local leaders members
            leaders=$(echo "$out" | sed -n 's/.* leader=\([0-9a-f]*\) .*/\1/p' | sort -u)
            members=$(echo "$out" | sed -n 's/.* member=\([0-9a-f]*\) .*/\1/p')
            if [ "$(echo "$leaders" | wc -l)" = 1 ] && [ "$leaders" != 0 ]; then
                i=0
                for m in $members; do
                    [ "$m" = "$leaders" ] && { echo "$i"; return; }
                    i=$((i + 1))
                done
            fi
        fi
        sleep 0.1
    done
    die "no agreed leader after 30s"
}

declare -A QPS P99 FAIL
measure() {
    local key=$1 name=$2 bin=$3 out result t l survivors times=()
    echo "== $name: starting 3 members ($bin)"
    start_cluster "$key" "$bin"
    echo "== $name: put, $TOTAL requests, $CLIENTS clients on $CONNS connections over $(all_endpoints)"
    out=$("$BENCH" bench put --endpoints "$(all_endpoints)" --clients "$CLIENTS" --conns "$CONNS" --total "$TOTAL" \
        --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space-size "$TOTAL" --sequential-keys \
        --no-progress --json "$ROOT/$key.json") || { echo "$out"; die "wasmraft bench put against $name failed"; }
    echo "$out" | grep -E 'Total:|Requests/sec:|(50|99)% in' | sed 's/^ */   /'
    # One "qps" and one "p99" (latency_us, µs) in put's one-line JSON.
    QPS[$key]=$(sed -n 's/.*"qps":\([0-9.]*\).*/\1/p' "$ROOT/$key.json" | awk '{ printf "%.1f", $1 }')
    P99[$key]=$(sed -n 's/.*"p99":\([0-9]*\).*/\1/p' "$ROOT/$key.json" | awk '{ printf "%.3f", $1 / 1000 }')
    for t in $(seq "$TRIALS"); do
        l=$(leader)
        survivors=""
        for i in $(seq 0 $((N - 1))); do [ "$i" = "$l" ] || survivors="$survivors${survivors:+,}${EP[$i]}"; done
        out=$("$KVLOAD" failover --kill-pid "${PID[$l]}" --endpoints "$survivors") \
            || { echo "$out"; die "failover trial $t against $name failed"; }
        wait "${PID[$l]}" 2>/dev/null || true
        echo "   trial $t: killed leader $key$l; $(echo "$out" | grep -v '^RESULT')"
        times+=("$(echo "$out" | sed -n 's/^RESULT .*failover_ms=\([^ ]*\).*/\1/p')")
        launch "$l"
        wait_ready "$l"
        leader >/dev/null
    done
    FAIL[$key]="${times[*]}"
    stop_cluster
}

measure etcd etcd "$ETCD_BIN"
measure subject "$LABEL" "$SUBJECT_BIN"

echo
echo "3-member clusters; put: total=$TOTAL clients=$CLIENTS conns=$CONNS key=${KEY_SIZE}B value=${VAL_SIZE}B; load avg: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %12s %12s %8s %12s %12s\n' workload "etcd qps" "$LABEL qps" ratio "etcd p99ms" "$LABEL p99ms"
ratio=$(awk -v s="${QPS[subject]}" -v e="${QPS[etcd]}" 'BEGIN { if (e > 0) printf "%.2f", s / e; else print "n/a" }')
printf '%-10s %12s %12s %8s %12s %12s\n' put "${QPS[etcd]}" "${QPS[subject]}" "$ratio" "${P99[etcd]}" "${P99[subject]}"
echo
echo "leader failover, kill -9 to first successful put through a survivor (ms), $TRIALS trials:"
printf '  %-8s %s\n' etcd "${FAIL[etcd]}" "$LABEL" "${FAIL[subject]}"
