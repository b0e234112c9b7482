#!/usr/bin/env bash
# backup-measure.sh — etcd's backup file both ways at size (issue 24), wasmraft vs etcd 3.4.23 in
# the same run: each server (one member) gets KEYS keys of VAL_SIZE-byte values (1M × 1000 B ≈ 1
# GiB of keyspace by default) with `wasmraft bench put`, then
#   1. `etcdctl snapshot save` (time, MiB/s, the server's peak RSS during the save — VmHWM reset
#      with clear_refs just before — and etcdctl's);
#   2. the restore of that file by each server's own tool (`wasmraft snapshot restore`,
#      `etcdctl snapshot restore`): time, MiB/s, peak RSS;
#   3. etcd's file restored by `wasmraft snapshot restore`, a wasmraft member started on it, and
#      its HashKV compared with the etcd it came from at the same revision.
#
# Usage: WASMRAFT_BIN=/path/to/release/wasmraft tests/scripts/backup-measure.sh
# Env: KEYS=1000000 VAL_SIZE=1000 DATA_ROOT=/tmp ETCD_BIN=etcd ETCDCTL=etcdctl KEEP=1
set -euo pipefail

cd "$(dirname "$0")/../.."
KEYS=${KEYS:-1000000}
VAL_SIZE=${VAL_SIZE:-1000}
WASMRAFT_BIN=${WASMRAFT_BIN:-target/release/wasmraft}
ETCD_BIN=${ETCD_BIN:-etcd}
ETCDCTL=${ETCDCTL:-etcdctl}
export ETCDCTL_API=3
ROOT=$(mktemp -d "${DATA_ROOT:-/tmp}/backup-measure-XXXXXX")
BASE=${BASE_PORT:-27600}
READY_LINE="ready to serve client requests"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP:-}" = 1 ] && echo "kept $ROOT" || rm -rf "$ROOT"
}
trap cleanup EXIT

hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }
mib_s() { echo "scale=1; $1 / 1048576 / $2" | bc -l; }

# start <name> <binary> <data dir> <port offset>: one member in the background; sets $pid
start() {
  local name=$1 bin=$2 dir=$3 off=$4
  "$bin" --name "$name" --data-dir "$dir" \
    --listen-client-urls "http://127.0.0.1:$((BASE + off))" --advertise-client-urls "http://127.0.0.1:$((BASE + off))" \
    --listen-peer-urls "http://127.0.0.1:$((BASE + off + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + off + 1))" \
    --initial-cluster "$name=http://127.0.0.1:$((BASE + off + 1))" --initial-cluster-token restored \
    --quota-backend-bytes 8589934592 >>"$ROOT/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1200); do grep -q "$READY_LINE" "$ROOT/$name.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "$name not ready" >&2; tail -20 "$ROOT/$name.log" >&2; exit 1
}

# timed <out file> <command...>: runs it under /usr/bin/time; prints "<seconds> <peak RSS MiB>"
timed() {
  local out=$1; shift
  /usr/bin/time -f "%e %M" -o "$out" "$@" >/dev/null 2>"$out.err" || { cat "$out.err" >&2; exit 1; }
  awk '{printf "%s %d\n", $1, $2 / 1024}' "$out"
}

hashkv() { # hashkv <port offset> <revision>: the hash; its time on stderr
  local t0=$(date +%s.%N)
  "$ETCDCTL" --endpoints "127.0.0.1:$((BASE + $1))" --command-timeout=600s endpoint hashkv --rev "$2" -w json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["HashKV"]["hash"])'
  echo "(HashKV on port offset $1 took $(printf %.1f "$(echo "$(date +%s.%N) - $t0" | bc -l)") s)" >&2
}
revision() {
  "$ETCDCTL" --endpoints "127.0.0.1:$((BASE + $1))" get x -w json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'
}

echo "keyspace: $KEYS keys of $VAL_SIZE-byte values; wasmraft $("$WASMRAFT_BIN" --version | tail -1); $("$ETCD_BIN" --version | head -1)"
for server in wasmraft etcd; do
  case $server in
    wasmraft) bin=$WASMRAFT_BIN off=0 ;;
    etcd) bin=$ETCD_BIN off=10 ;;
  esac
  start "$server" "$bin" "$ROOT/$server.data" "$off"
  server_pid=$pid
  "$WASMRAFT_BIN" bench put --endpoints "http://127.0.0.1:$((BASE + off))" --conns 10 --clients 100 --total "$KEYS" \
    --key-size 16 --val-size "$VAL_SIZE" --key-space-size "$KEYS" --sequential-keys --no-progress >/dev/null
  echo "$server: loaded, server RSS $(awk '/VmRSS/ {print int($2/1024)}' "/proc/$server_pid/status") MiB"

  reset_hwm "$server_pid"
  read -r secs rss < <(timed "$ROOT/$server.save" "$ETCDCTL" --endpoints "127.0.0.1:$((BASE + off))" snapshot save "$ROOT/$server.db")
  size=$(stat -c %s "$ROOT/$server.db")
  echo "$server: snapshot save $((size / 1048576)) MiB in $secs s ($(mib_s "$size" "$secs") MiB/s); peak RSS server $(hwm "$server_pid") MiB, etcdctl $rss MiB"

  case $server in
    wasmraft) restore=("$WASMRAFT_BIN" snapshot restore) ;;
    etcd) restore=("$ETCDCTL" snapshot restore) ;;
  esac
  read -r secs rss < <(timed "$ROOT/$server.restore" "${restore[@]}" "$ROOT/$server.db" --data-dir "$ROOT/$server.restored" \
    --name r --initial-cluster "r=http://127.0.0.1:$((BASE + 21))" --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 21))")
  echo "$server: its own restore in $secs s ($(mib_s "$size" "$secs") MiB/s), peak RSS $rss MiB"
  if [ "$server" = etcd ]; then
    etcd_rev=$(revision "$off")
    etcd_hash=$(hashkv "$off" "$etcd_rev")
  fi
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
done

# etcd's file into wasmraft.
read -r secs rss < <(timed "$ROOT/cross.restore" "$WASMRAFT_BIN" snapshot restore "$ROOT/etcd.db" --data-dir "$ROOT/cross" \
  --name cross --initial-cluster "cross=http://127.0.0.1:$((BASE + 31))" --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 31))")
size=$(stat -c %s "$ROOT/etcd.db")
echo "etcd's file restored by wasmraft: $secs s ($(mib_s "$size" "$secs") MiB/s), peak RSS $rss MiB"
start cross "$WASMRAFT_BIN" "$ROOT/cross" 30
cross_hash=$(hashkv 30 "$etcd_rev")
echo "HashKV at revision $etcd_rev: etcd $etcd_hash, wasmraft restored from etcd's file $cross_hash"
[ "$etcd_hash" = "$cross_hash" ] || { echo "HASHKV DIFFERS" >&2; exit 1; }
