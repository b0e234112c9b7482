#!/usr/bin/env bash
# snapshot-transfer.sh — how fast a large state travels, and what it costs in memory, for
# wasmraft (release build): a 3-member cluster with one member stopped while ~MB_VALUES MB of
# values are written (the state database holds each value twice: the live key and its
# history), the log compacted past it, then
#   1. the stopped member restarts and catches up through /raft/snapshot (leader → follower);
#   2. `etcdctl snapshot save` streams the leader's state (Maintenance.Snapshot).
# Prints the state size, the time, the rate, and the peak RSS (VmHWM, reset with clear_refs
# just before each transfer) of the sender and the receiver.
#
# Usage: WASMRAFT_BIN=target/release/wasmraft tests/scripts/snapshot-transfer.sh
# (the values are written with that binary's `wasmraft bench put`)
# Env: MB_VALUES=600 (1 MB values), DATA_ROOT=/tmp, KEEP=1 keeps data dirs and logs.
set -euo pipefail

cd "$(dirname "$0")/../.."
MB_VALUES=${MB_VALUES:-600}
WASMRAFT_BIN=${WASMRAFT_BIN:-target/release/wasmraft}
ETCDCTL=${ETCDCTL:-etcdctl}
ROOT=$(mktemp -d "${DATA_ROOT:-/tmp}/snapshot-transfer-XXXXXX")
BASE=${BASE_PORT:-27400}
READY_LINE="ready to serve client requests"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP:-}" = 1 ] && echo "kept $ROOT" || rm -rf "$ROOT"
}
trap cleanup EXIT

cluster="m0=http://127.0.0.1:$((BASE + 10)),m1=http://127.0.0.1:$((BASE + 11)),m2=http://127.0.0.1:$((BASE + 12))"
start() { # start <i>: runs member i in the background, records its pid in pid<i>
  local i=$1
  "$WASMRAFT_BIN" --name "m$i" --data-dir "$ROOT/m$i" \
    --listen-client-urls "http://127.0.0.1:$((BASE + i))" --advertise-client-urls "http://127.0.0.1:$((BASE + i))" \
    --listen-peer-urls "http://127.0.0.1:$((BASE + 10 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 10 + i))" \
    --initial-cluster "$cluster" --snapshot-count 100 --snapshot-catchup-entries 10 \
    --quota-backend-bytes 8589934592 >>"$ROOT/m$i.log" 2>&1 &
  eval "pid$i=$!"
  pids+=("$!")
}
wait_ready() { # wait_ready <i>
  for _ in $(seq 600); do grep -q "$READY_LINE" "$ROOT/m$1.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "member $1 not ready" >&2; tail -20 "$ROOT/m$1.log" >&2; exit 1
}
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }
applied() { # applied <i>: raft applied index from endpoint status
  "$ETCDCTL" --endpoints "127.0.0.1:$((BASE + $1))" endpoint status -w json 2>/dev/null |
    sed -n 's/.*"raftAppliedIndex":\([0-9]*\).*/\1/p'
}

for i in 0 1 2; do start "$i"; done
for i in 0 1 2; do wait_ready "$i"; done
leader=$("$ETCDCTL" --endpoints "127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))" endpoint status -w json |
  python3 -c 'import json,sys; s=json.load(sys.stdin); print([i for i,e in enumerate(s) if e["Status"]["header"]["member_id"]==e["Status"]["leader"]][0])')
[ -n "${leader:-}" ] || { echo "no leader" >&2; exit 1; }
eval "leader_pid=\$pid$leader"
lagger=$(( (leader + 1) % 3 ))
eval "lagger_pid=\$pid$lagger"
kill "$lagger_pid"; wait "$lagger_pid" 2>/dev/null || true

echo "writing $MB_VALUES values of 1 MB through member $leader (member $lagger stopped)..."
"$WASMRAFT_BIN" bench put --endpoints "http://127.0.0.1:$((BASE + leader))" --clients 4 --total "$MB_VALUES" \
  --key-size 16 --val-size 1000000 --key-space-size "$MB_VALUES" --sequential-keys --no-progress >/dev/null
state=$(stat -c %s "$ROOT/m$leader/member/state.redb")
echo "leader state database: $((state / 1048576)) MiB"

echo "leader RSS before the catch-up: $(rss "$leader_pid") MiB"
reset_hwm "$leader_pid"
t0=$(date +%s.%N)
start "$lagger"
eval "lagger_pid=\$pid$lagger"
target=$(applied "$leader")
while :; do
  a=$(applied "$lagger" || true)
  [ -n "$a" ] && [ "$a" -ge "$target" ] && break
  sleep 0.2
done
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc -l)
echo "/raft/snapshot catch-up (restart to applied $target, includes start-up): $(printf %.1f "$secs") s," \
  "$(echo "$state / 1048576 / $secs" | bc) MiB/s; peak RSS sender $(hwm "$leader_pid") MiB, receiver $(hwm "$lagger_pid") MiB"

echo "leader RSS before snapshot save: $(rss "$leader_pid") MiB"
reset_hwm "$leader_pid"
t0=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$ROOT/etcdctl.rss" "$ETCDCTL" --endpoints "127.0.0.1:$((BASE + leader))" \
  snapshot save "$ROOT/snap.db" >/dev/null 2>&1
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc -l)
size=$(stat -c %s "$ROOT/snap.db")
echo "etcdctl snapshot save: $((size / 1048576)) MiB in $(printf %.1f "$secs") s, $(echo "$size / 1048576 / $secs" | bc) MiB/s;" \
  "peak RSS sender $(hwm "$leader_pid") MiB, etcdctl $(( $(cat "$ROOT/etcdctl.rss") / 1024 )) MiB"
