#!/bin/bash
# Hello-world throughput of percore against Debian's nginx, in the same run on the same
# machine: one server worker pinned to CPU 0 with wrk on CPU 1, then two workers each.
# Prints requests/s, p99 latency, requests per server CPU-second, and percore/nginx ratios.
#
#   bench/run.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]
#   PERCORE=path/to/percore bench/run.sh
#   BASELINE=path/to/older/percore bench/run.sh   adds that build to every round and
#                                                 prints percore/baseline: what a change costs
#   BASELINE_CONF='worker_sandbox off;' bench/run.sh   the baseline is the same build with
#                                                 these main-context directives added
set -eu

DURATION=10
ROUNDS=3
CONNS=100
while getopts d:r:c: opt; do
    case $opt in
    d) DURATION=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    c) CONNS=$OPTARG ;;
    *) sed -n '2,10p' "$0"; exit 1 ;;
    esac
done

TOP=$(cd "$(dirname "$0")/.." && pwd)
PERCORE=${PERCORE:-$TOP/_build/release/percore}
NGINX=${NGINX:-/usr/sbin/nginx}
BASELINE_CONF=${BASELINE_CONF:-}
BASELINE=${BASELINE:-}
[ -n "$BASELINE_CONF" ] && [ -z "$BASELINE" ] && BASELINE=$PERCORE
SERVERS="percore nginx"
[ -n "$BASELINE" ] && SERVERS="percore baseline nginx"
TMP=$(mktemp -d /tmp/percore-bench.XXXXXX)
SERVER_PID=
trap 'stop_server; rm -rf "$TMP"' EXIT

for need in wrk "$NGINX"; do
    if ! command -v "$need" >/dev/null; then
        [ "$(id -u)" -eq 0 ] || { echo "bench: $need is missing" >&2; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            wrk nginx-light >/dev/null
    fi
done
if [ ! -x "$PERCORE" ]; then
    [ -x "$PERCORE" ] || { echo "bench: build percore first (./quickstart.sh run)" >&2; exit 1; }
fi
[ "$(nproc)" -ge 2 ] || echo "bench: fewer than 2 CPUs: pinned figures share a CPU with wrk" >&2

free_port() {
    while :; do
        p=$((RANDOM % 20000 + 10000)) # below the ephemeral ports
        [ -z "$(ss -Htln "sport = :$p")" ] && { echo "$p"; return; }
    done
}
PORT=$(free_port)
BODY='Hello, world!\n'

percore_conf() { # WORKERS [MAIN DIRECTIVES]
    cat <<CONF
workers $1;
${2:-}
cpu_affinity on;
service hello {
    listen 127.0.0.1:$PORT;
    route / { respond 200 "$BODY"; }
}
CONF
}

nginx_conf() { # WORKERS
    affinity=$([ "$1" -eq 1 ] && echo 01 || echo "01 10")
    cat <<CONF
worker_processes $1;
worker_cpu_affinity $affinity;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    default_type text/plain;
    server {
        listen 127.0.0.1:$PORT reuseport;
        location / { return 200 "$BODY"; }
    }
}
CONF
}

start_server() { # NAME WORKERS CPUSET
    case $1 in
    percore | baseline)
        bin=$PERCORE extra=
        [ "$1" = baseline ] && bin=$BASELINE extra=$BASELINE_CONF
        percore_conf "$2" "$extra" >"$TMP/percore.conf"
        taskset -c "$3" "$bin" -f -c "$TMP/percore.conf" 2>"$TMP/percore.log" &
        ;;
    nginx)
        nginx_conf "$2" >"$TMP/nginx.conf"
        taskset -c "$3" "$NGINX" -c "$TMP/nginx.conf" -p "$TMP" -g 'daemon off;' \
            2>"$TMP/nginx.log" &
        ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench: $1 did not start" >&2
    cat "$TMP"/*.log >&2
    exit 1
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# CPU ticks (user + system) of the server's master and workers.
server_ticks() {
    t=0
    for p in "$SERVER_PID" $(pgrep -P "$SERVER_PID"); do
        # shellcheck disable=SC2046 # split on purpose: one positional per stat field
        set -- $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || echo)
        [ $# -ge 13 ] && t=$((t + ${12} + ${13}))
    done
    echo "$t"
}

# run_one NAME WORKERS SERVER_CPUS WRK_CPUS THREADS: prints "rps p99_ms req_per_cpu_s"
run_one() {
    start_server "$1" "$2" "$3"
    wrk -t"$5" -c"$CONNS" -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 # warm-up
    t0=$(server_ticks)
    taskset -c "$4" wrk -t"$5" -c"$CONNS" -d"${DURATION}s" --latency \
        "http://127.0.0.1:$PORT/" >"$TMP/wrk.out" 2>&1
    t1=$(server_ticks)
    stop_server
    hz=$(getconf CLK_TCK)
    awk -v ticks=$((t1 - t0)) -v hz="$hz" -v dur="$DURATION" '
        /requests in/ { reqs = $1 }
        /Requests\/sec/ { rps = $2 }
        / 99%/ { v = $2; ms = v + 0
                 if (v ~ /us$/) ms = ms / 1000; else if (v ~ /[^m]s$/) ms = ms * 1000 }
        /Socket errors|Non-2xx/ { bad = 1 }
        END { cpu = ticks / hz; printf "%.0f %.2f %.0f %s\n", rps, ms,
              (cpu > 0 ? reqs / cpu : 0), (bad ? "errors" : "ok") }' "$TMP/wrk.out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf 'percore %s vs %s, %ss runs, %s connections, median of %s rounds\n\n' \
    "$("$PERCORE" -V | cut -d' ' -f2)" "$("$NGINX" -v 2>&1 | sed 's/.*: //')" \
    "$DURATION" "$CONNS" "$ROUNDS"
printf '%-34s %12s %10s %14s\n' "scenario" "req/s" "p99 ms" "req/CPU-s"

for scenario in "1 worker, server CPU 0, wrk CPU 1|1|0|1|1" \
                "2 workers, wrk unpinned|2|0-$(($(nproc) - 1))|0-$(($(nproc) - 1))|2"; do
    IFS='|' read -r label workers scpus wcpus threads <<<"$scenario"
    for s in $SERVERS; do : >"$TMP/$s.res"; done
    for _ in $(seq 1 "$ROUNDS"); do
        for s in $SERVERS; do
            run_one "$s" "$workers" "$scpus" "$wcpus" "$threads" >>"$TMP/$s.res"
        done
    done
    for s in $SERVERS; do
        rps=$(cut -d' ' -f1 "$TMP/$s.res" | median)
        p99=$(cut -d' ' -f2 "$TMP/$s.res" | median)
        eff=$(cut -d' ' -f3 "$TMP/$s.res" | median)
        grep -q errors "$TMP/$s.res" && note=" (errors seen)" || note=""
        printf '%-34s %12s %10s %14s%s\n' "$s: $label" "$rps" "$p99" "$eff" "$note"
        eval "${s}_rps=$rps ${s}_p99=$p99 ${s}_eff=$eff"
    done
    # shellcheck disable=SC2154
    awk -v a="$percore_rps" -v b="$nginx_rps" -v c="$percore_eff" -v d="$nginx_eff" \
        -v e="$percore_p99" -v f="$nginx_p99" 'BEGIN {
        printf "%-34s %12.2f %10.2f %14.2f\n", "ratio percore/nginx", a / b,
               (f > 0 ? e / f : 0), (d > 0 ? c / d : 0) }'
    if [ -n "$BASELINE" ]; then
        # shellcheck disable=SC2154
        awk -v a="$percore_rps" -v b="$baseline_rps" -v c="$percore_eff" -v d="$baseline_eff" \
            -v e="$percore_p99" -v f="$baseline_p99" 'BEGIN {
            printf "%-34s %12.2f %10.2f %14.2f\n", "ratio percore/baseline", a / b,
                   (f > 0 ? e / f : 0), (d > 0 ? c / d : 0) }'
    fi
    echo
done
