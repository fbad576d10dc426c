#!/bin/bash
# The reverse proxy's work per CPU-second: percore against Debian's nginx and h2o, each with
# one worker pinned to CPU 0, in front of one keep-alive nginx upstream pinned to CPU 1
# beside wrk (keep-alive, 1 thread). Scenarios:
#   instant   the upstream answers 9 bytes at once (`return 200`)
#   64k       the upstream sends a 64 KiB file
# Rounds are interleaved (every server once per round). Prints req/s, requests per
# CPU-second of the server's processes, wrk's p99, and percore's work per CPU-second over
# each peer's
# (median of the rounds); a peer that is not installed is skipped.
#
#   bench/proxy.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]
#   PERCORE=path/to/percore BASELINE=path/to/other/percore bench/proxy.sh
#       (BASELINE adds "base": that build with the same config)
set -eu

DURATION=8
ROUNDS=3
CONNS=64
while getopts d:r:c: opt; do
    case ${opt} in
    d) DURATION=${OPTARG} ;;
    r) ROUNDS=${OPTARG} ;;
    c) CONNS=${OPTARG} ;;
    *) sed -n '2,13p' "$0"; exit 1 ;;
    esac
done

TOP=$(cd "$(dirname "$0")/.." && pwd)
PERCORE=${PERCORE:-${TOP}/_build/release/percore}
NGINX=${NGINX:-/usr/sbin/nginx}
H2O=${H2O:-/usr/bin/h2o}
TMP=$(mktemp -d /tmp/percore-bench.XXXXXX)
UP_PID=
SERVER_PID=
trap 'stop_server; [[ -n "${UP_PID}" ]] && kill "${UP_PID}" 2>/dev/null; wait 2>/dev/null; rm -rf "${TMP}"' EXIT

for t in wrk taskset curl "${NGINX}" "${PERCORE}"; do
    command -v "${t}" >/dev/null || { echo "bench: ${t} is missing" >&2; exit 1; }
done
[[ -z "${BASELINE:-}" || -x "${BASELINE}" ]] || { echo "bench: ${BASELINE} is not executable" >&2; exit 1; }
[[ "$(nproc)" -ge 2 ]] || echo "bench: fewer than 2 CPUs: the server shares its CPU" >&2

# PORT: a loopback port nothing listens on.
free_port() {
    local used
    while :; do
        PORT=$((RANDOM % 20000 + 10000)) # below the ephemeral ports
        used=$(ss -Htln "sport = :${PORT}" || true)
        [[ -z "${used}" ]] && return
    done
}

# nginx and h2o run their workers as nobody when started as root.
chmod 755 "${TMP}"
mkdir -p "${TMP}/www"
head -c 65536 /dev/urandom >"${TMP}/www/64k.bin"
chmod 644 "${TMP}/www/64k.bin"

free_port
UP=${PORT}
cat >"${TMP}/up.conf" <<CONF
worker_processes 1; pid ${TMP}/up.pid; error_log ${TMP}/up.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; sendfile on;
  server { listen 127.0.0.1:${UP}; root ${TMP}/www;
    location = /instant { return 200 "upstream\n"; } } }
CONF
taskset -c 1 "${NGINX}" -c "${TMP}/up.conf" -p "${TMP}" -g 'daemon off;' 2>/dev/null &
UP_PID=$!

# conf NAME PORT: NAME's config proxying /p/ to the upstream, one worker on CPU 0.
conf() {
    case $1 in
    percore | base)
        cat <<CONF
workers 1;
cpu_affinity on;
service bench {
    listen 127.0.0.1:$2;
    route /p/ { proxy http://127.0.0.1:${UP}/; }
}
CONF
        ;;
    nginx)
        cat <<CONF
worker_processes 1; worker_cpu_affinity 01; pid ${TMP}/nginx.pid; error_log ${TMP}/nginx.err warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:${UP}; keepalive 256; }
  server { listen 127.0.0.1:$2;
    location /p/ { proxy_pass http://up/; proxy_http_version 1.1;
                   proxy_set_header Connection ""; } } }
CONF
        ;;
    h2o)
        cat <<CONF
num-threads: 1
user: nobody
error-log: ${TMP}/h2o.err
listen: {host: 127.0.0.1, port: $2}
hosts:
  default:
    paths:
      /p/: {proxy.reverse.url: "http://127.0.0.1:${UP}/"}
CONF
        ;;
    *) ;;
    esac
}

start_server() {
    free_port
    conf "$1" "${PORT}" >"${TMP}/$1.conf"
    case $1 in
    percore) taskset -c 0 "${PERCORE}" -f -c "${TMP}/$1.conf" 2>"${TMP}/server.log" & ;;
    base) taskset -c 0 "${BASELINE}" -f -c "${TMP}/$1.conf" 2>"${TMP}/server.log" & ;;
    nginx) taskset -c 0 "${NGINX}" -c "${TMP}/$1.conf" -p "${TMP}" -g 'daemon off;' 2>"${TMP}/server.log" & ;;
    h2o) taskset -c 0 "${H2O}" -c "${TMP}/$1.conf" >"${TMP}/server.log" 2>&1 & ;;
    *) ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -sf -o /dev/null "http://127.0.0.1:${PORT}/p/instant" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: $1 did not start" >&2
    cat "${TMP}/server.log" >&2
    exit 1
}

stop_server() {
    if [[ -n "${SERVER_PID}" ]]; then
        kill -TERM "${SERVER_PID}" 2>/dev/null || true
        wait "${SERVER_PID}" 2>/dev/null || true
        SERVER_PID=
    fi
}

# check_answers NAME: both scenarios answer what they should, or the figures mean nothing.
check_answers() {
    local got
    got=$(curl -s -w ' %{http_code}' "http://127.0.0.1:${PORT}/p/instant")
    [[ "${got}" == "upstream"$'\n'" 200" ]] || { echo "bench: $1: instant answers '${got}'" >&2; exit 1; }
    got=$(curl -s -o "${TMP}/got.bin" -w '%{http_code}' "http://127.0.0.1:${PORT}/p/64k.bin")
    if [[ "${got}" != 200 ]] || ! cmp -s "${TMP}/got.bin" "${TMP}/www/64k.bin"; then
        echo "bench: $1: 64k answers ${got} or other bytes" >&2
        exit 1
    fi
}

# TICKS: the CPU ticks (user + system) of the server and its children (workers).
server_ticks() {
    local p stat
    TICKS=0
    for p in ${SERVER_PID} $(pgrep -P "${SERVER_PID}" || true); do
        stat=$(sed 's/^.*) //' "/proc/${p}/stat" 2>/dev/null || true)
        # shellcheck disable=SC2086 # split on purpose: one positional per stat field
        set -- ${stat}
        if [[ $# -ge 13 ]]; then TICKS=$((TICKS + ${12} + ${13})); fi
    done
}

# run_one NAME PATH: prints "rps req_per_cpu_s p99_ms ok|errors"
run_one() {
    local t0 hz
    wrk -t1 -c"${CONNS}" -d1s "http://127.0.0.1:${PORT}$2" >/dev/null 2>&1 # warm-up
    server_ticks
    t0=${TICKS}
    taskset -c 1 wrk -t1 -c"${CONNS}" -d"${DURATION}s" --latency \
        "http://127.0.0.1:${PORT}$2" >"${TMP}/wrk.out" 2>&1
    server_ticks
    hz=$(getconf CLK_TCK)
    awk -v ticks=$((TICKS - t0)) -v hz="${hz}" '
        /requests in/ { reqs = $1 }
        /Requests\/sec/ { rps = $2 }
        / 99%/ { v = $2; ms = v + 0; if (v ~ /us$/) ms /= 1000; else if (v ~ /[^m]s$/) ms *= 1000 }
        /Socket errors|Non-2xx/ { bad = 1 }
        END { cpu = ticks / hz; printf "%.0f %.0f %.2f %s\n", rps, (cpu > 0 ? reqs / cpu : 0),
              ms, (bad ? "errors" : "ok") }' "${TMP}/wrk.out"
}

# median FILE FIELD: MED, the median of the FIELDth values of FILE's lines.
median() {
    MED=$(sort -g -k"$2,$2" "$1" | awk -v f="$2" '{ v[NR] = $f } END { print v[int((NR + 1) / 2)] }')
}

SERVERS="percore${BASELINE:+ base} nginx"
[[ -x "${H2O}" ]] && SERVERS="${SERVERS} h2o"
SCENARIOS="instant:/p/instant 64k:/p/64k.bin"
printf '%s, %s, %s: 1 worker on CPU 0; upstream nginx and wrk on CPU 1;\n' \
    "$("${PERCORE}" -V)" "$("${NGINX}" -v 2>&1 | sed 's/.*: //')" \
    "$([[ -x "${H2O}" ]] && "${H2O}" -v 2>/dev/null | head -n 1 || echo 'no h2o')"
printf '%s connections, %ss runs, median of %s rounds\n\n' "${CONNS}" "${DURATION}" "${ROUNDS}"
for _ in $(seq 1 "${ROUNDS}"); do
    for s in ${SERVERS}; do
        start_server "${s}"
        check_answers "${s}"
        for sc in ${SCENARIOS}; do
            run_one "${s}" "${sc#*:}" >>"${TMP}/${s}.${sc%%:*}"
        done
        stop_server
    done
done
printf '%-9s %-8s %10s %12s %9s %14s %12s\n' scenario server req/s req/CPU-s p99-ms \
    "percore/this" errors
for sc in ${SCENARIOS}; do
    name=${sc%%:*}
    median "${TMP}/percore.${name}" 2
    ref=${MED}
    for s in ${SERVERS}; do
        f="${TMP}/${s}.${name}"
        median "${f}" 1
        rps=${MED}
        median "${f}" 2
        eff=${MED}
        median "${f}" 3
        p99=${MED}
        bad=$(grep -c errors "${f}" || true)
        awk -v sc="${name}" -v s="${s}" -v r="${rps}" -v e="${eff}" -v p="${p99}" \
            -v ref="${ref}" -v bad="${bad}" 'BEGIN {
            printf "%-9s %-8s %10s %12s %9s %14.2f %12s\n", sc, s, r, e, p,
                   (e > 0 ? ref / e : 0), bad }'
    done
done
printf '\npercore/this: percore'"'"'s requests per CPU-second over this server'"'"'s\n'
