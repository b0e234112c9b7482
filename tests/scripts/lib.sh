# lib.sh — helpers shared by the compare scripts (compare-load.sh, compare-cluster.sh,
# bench-compare.sh). Source it after defining `die MESSAGE` (prints and exits).

# The real etcd to compare with (ETCD_BIN, else etcd on PATH), where cargo puts the binaries, and
# the line both servers log once they serve clients.
ETCD_BIN=${ETCD_BIN:-$(command -v etcd || true)}
[ -n "$ETCD_BIN" ] && [ -x "$ETCD_BIN" ] || die "real etcd not found (apt-get install etcd-server, or set ETCD_BIN)"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
READY_LINE="ready to serve client requests"

# free_port: prints a free loopback port below the ephemeral range (nothing accepts a connection
# on it), never one this script has handed out before.
USED=" "
free_port() {
    local p
    for _ in $(seq 1000); do
        p=$((20000 + RANDOM % 12000))
        case "$USED" in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED="$USED$p "
            echo "$p"
            return
        fi
    done
    die "no free port"
}

# reap PID...: kill -9 each (empty ones skipped) and wait for it
reap() {
    local p
    for p in "$@"; do
        [ -n "$p" ] && { kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }
    done
    return 0
}
