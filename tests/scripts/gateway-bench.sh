#!/usr/bin/env bash
# gateway-bench.sh — etcd's JSON gateway (/v3/kv/*) measured on wasmraft and on etcd 3.4.23 in
# the same run with the same load tool (`wasmraft bench --gateway`), and what a request costs
# the member in CPU through the gateway against gRPC (issue 25).
#
# One single member of each server on loopback (the same flags), started once and kept up. Then,
# round by round (the servers' order rotates each round), for each workload (put; range of one
# key, linearizable), each client count and each transport (gateway, grpc), one timed
# `wasmraft bench` run per server. Around each run the member's CPU time is read from
# /proc/PID/stat (utime + stime) and divided by the requests answered: the member's CPU per
# request, everything it did in that window included (raft, fsync, apply, HTTP and JSON).
#
# Prints one TSV line per run (grep '^run') and, at the end, per workload and client count a
# table of best and median QPS, the median p99 and the median CPU per request, then the ratios
# wasmraft/etcd (gateway) and each server's gateway/gRPC CPU per request.
#
# Connections: the gateway speaks HTTP/1.1, one request at a time per connection, so it gets one
# connection per client (--conns=CLIENTS); gRPC multiplexes, so it gets min(CLIENTS, GRPC_CONNS).
#
# Usage: tests/scripts/gateway-bench.sh
#   WASMRAFT_BIN=target/release/wasmraft   the member (and the load tool, unless BENCH_BIN)
#   BENCH_BIN=$WASMRAFT_BIN                the `wasmraft bench` binary
#   ETCD_BIN=/usr/bin/etcd                 Debian's etcd 3.4.23
#   CLIENTS="1 100" WORKLOADS="put range" TRANSPORTS="gateway grpc" ROUNDS=3 DURATION=3s
#   GRPC_CONNS=10 KEY_SIZE=8 VAL_SIZE=256 RANGE_KEY=foo
#   TSV=file (also write the runs there)   KEEP=1 (keep data dirs and logs)
set -euo pipefail

cd "$(dirname "$0")/../.."
die() { echo "gateway-bench: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

WASMRAFT_BIN=${WASMRAFT_BIN:-target/release/wasmraft}
BENCH_BIN=${BENCH_BIN:-$WASMRAFT_BIN}
CLIENTS=${CLIENTS:-"1 100"}
WORKLOADS=${WORKLOADS:-"put range"}
TRANSPORTS=${TRANSPORTS:-"gateway grpc"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3s}
GRPC_CONNS=${GRPC_CONNS:-10}
KEY_SIZE=${KEY_SIZE:-8}
VAL_SIZE=${VAL_SIZE:-256}
RANGE_KEY=${RANGE_KEY:-foo}

# free_port, reap, READY_LINE, ETCD_BIN
# shellcheck source=tests/scripts/lib.sh
source tests/scripts/lib.sh
[ -x "$WASMRAFT_BIN" ] || die "$WASMRAFT_BIN is not executable (cargo build --release -p wasmraft, or set WASMRAFT_BIN)"
[ -x "$BENCH_BIN" ] || die "$BENCH_BIN is not executable"
command -v jq >/dev/null || die "jq is needed to read the bench's --json"
command -v etcdctl >/dev/null || die "etcdctl is needed to write RANGE_KEY (apt-get install etcd-client)"
for w in $WORKLOADS; do case "$w" in put | range) ;; *) die "unknown workload $w" ;; esac; done
for t in $TRANSPORTS; do case "$t" in gateway | grpc) ;; *) die "unknown transport $t" ;; esac; done
TICK=$(getconf CLK_TCK)

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/gateway-bench.XXXXXX")
NAMES=(etcd wasmraft)
BINS=("$ETCD_BIN" "$(realpath "$WASMRAFT_BIN")")
PIDS=() EPS=()
cleanup() {
    reap "${PIDS[@]}"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $ROOT"; else rm -rf "$ROOT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_member I: a fresh single member of server I in $ROOT/NAME; appends to PIDS and EPS
start_member() {
    local i=$1 dir=$ROOT/${NAMES[$1]} cport pport ep pid
    cport=$(free_port) pport=$(free_port)
    ep="http://127.0.0.1:$cport"
    mkdir -p "$dir"
    : >"$dir/log"
    "${BINS[i]}" --name m0 --data-dir "$dir/data" \
        --listen-client-urls "$ep" --advertise-client-urls "$ep" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "m0=http://127.0.0.1:$pport" --initial-cluster-token gateway-bench \
        --initial-cluster-state new >"$dir/log" 2>&1 &
    pid=$!
    PIDS+=("$pid") EPS+=("$ep")
    for _ in $(seq 600); do
        if grep -q "$READY_LINE" "$dir/log"; then
            ETCDCTL_API=3 etcdctl --endpoints="$ep" put "$RANGE_KEY" "$(head -c "$VAL_SIZE" /dev/zero | tr '\0' v)" >/dev/null
            return
        fi
        kill -0 "$pid" 2>/dev/null || { tail -30 "$dir/log" >&2; die "${NAMES[i]} exited before ready"; }
        sleep 0.1
    done
    tail -30 "$dir/log" >&2
    die "${NAMES[i]} not ready after 60s"
}

# cpu_ticks PID: the process's utime + stime so far, in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised command name, which may hold spaces)
cpu_ticks() {
    local rest
    rest=$(sed 's/^.*) //' "/proc/$1/stat")
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${12} + ${13}))
}

for i in 0 1; do start_member "$i"; done
echo "etcd: $ETCD_BIN ($("$ETCD_BIN" --version 2>/dev/null | head -1))"
echo "wasmraft: $WASMRAFT_BIN ($("$WASMRAFT_BIN" --version 2>/dev/null | head -1)); load tool: $BENCH_BIN bench"
echo "machine: $(nproc) cores, $(uname -r); load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "shape: --duration=$DURATION, clients $CLIENTS (gateway --conns=clients, grpc --conns=min(clients,$GRPC_CONNS)), --key-size=$KEY_SIZE --val-size=$VAL_SIZE, put on one key, range of $RANGE_KEY (linearizable), $ROUNDS round(s)"
RUNS=$ROOT/runs.tsv
HEADER=$'run\tround\tworkload\tclients\tserver\ttransport\tqps\tp50_ms\tp99_ms\terrors\tcpu_us_per_req\tload1'
echo "$HEADER"
: >"$RUNS"

FAILED=0
# one_run ROUND WORKLOAD CLIENTS I TRANSPORT
one_run() {
    local round=$1 w=$2 c=$3 i=$4 t=$5 conns args json before after rc=0 load line
    case "$t" in gateway) conns=$c ;; grpc) conns=$((c < GRPC_CONNS ? c : GRPC_CONNS)) ;; esac
    case "$w" in
        put) args=(put --key-size="$KEY_SIZE" --val-size="$VAL_SIZE") ;;
        range) args=(range "$RANGE_KEY" --consistency=l) ;;
    esac
    [ "$t" = gateway ] && args+=(--gateway)
    json=$ROOT/run.json
    load=$(cut -d' ' -f1 /proc/loadavg)
    before=$(cpu_ticks "${PIDS[i]}")
    "$BENCH_BIN" bench "${args[@]}" --endpoints="${EPS[i]}" --clients="$c" --conns="$conns" \
        --duration="$DURATION" --no-progress --json="$json" >"$ROOT/out" 2>&1 || rc=$?
    after=$(cpu_ticks "${PIDS[i]}")
    if [ "$rc" = 0 ] && line=$(jq -r --arg pre "run	$round	$w	$c	${NAMES[i]}	$t" \
        --argjson ticks $((after - before)) --argjson tick "$TICK" --arg load "$load" '
        [$pre, (.qps * 10 | round / 10), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000),
         ([.errors[]] | add // 0), (if .count > 0 then ($ticks / $tick * 1e6 / .count | round) else "" end), $load]
        | map(tostring) | join("\t")' "$json"); then
        echo "$line" | tee -a "$RUNS"
    else
        echo "gateway-bench: ${NAMES[i]} $w $t clients=$c round $round: bench exited $rc" >&2
        tail -8 "$ROOT/out" >&2
        FAILED=1
    fi
}

for round in $(seq "$ROUNDS"); do
    for w in $WORKLOADS; do
        for c in $CLIENTS; do
            for t in $TRANSPORTS; do
                for k in 0 1; do one_run "$round" "$w" "$c" $(((k + round - 1) % 2)) "$t"; done
            done
        done
    done
done

[ -z "${TSV:-}" ] || { echo "$HEADER"; cat "$RUNS"; } >"$TSV"

echo
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RUNS" <<'EOF'
import statistics, sys
from collections import defaultdict

runs = defaultdict(list)
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    _, _, w, c, server, t, qps, p50, p99, errors, cpu, _ = f
    runs[w, int(c), server, t].append((float(qps), float(p99), int(errors), float(cpu) if cpu else None))

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")

cells = {}
for w, c in sorted({(k[0], k[1]) for k in runs}, key=lambda x: (x[0] != "put", x[1])):
    print(f"\n{w}, {c} client(s):\n")
    print("| server | transport | best QPS | median QPS | median p99 ms | member CPU µs/req (median) | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for server in ("wasmraft", "etcd"):
        for t in ("gateway", "grpc"):
            r = runs.get((w, c, server, t))
            if not r:
                continue
            cell = (max(x[0] for x in r), med([x[0] for x in r]), med([x[1] for x in r]), med([x[3] for x in r]))
            cells[w, c, server, t] = cell
            print(f"| {server} | {t} | {cell[0]:.0f} | {cell[1]:.0f} | {cell[2]:.2f} | {cell[3]:.0f} | {sum(x[2] for x in r)} |")
    g = lambda s, t: cells.get((w, c, s, t))
    if g("wasmraft", "gateway") and g("etcd", "gateway"):
        a, b = g("wasmraft", "gateway"), g("etcd", "gateway")
        print(f"\n- gateway, wasmraft / etcd: best QPS {a[0] / b[0]:.2f}, median QPS {a[1] / b[1]:.2f}, median p99 {a[2] / b[2]:.2f}")
    for s in ("wasmraft", "etcd"):
        if g(s, "gateway") and g(s, "grpc"):
            a, b = g(s, "gateway"), g(s, "grpc")
            print(f"- {s}: gateway costs {a[3] - b[3]:+.0f} µs of member CPU per request over gRPC ({a[3]:.0f} vs {b[3]:.0f})")
EOF
[ "$FAILED" = 0 ] || die "some runs failed (see above)"
