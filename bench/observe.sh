#!/bin/bash
# What access logs, request IDs and tracing cost: percore serving GET /hello (respond 200)
# with
#   off       none of them
#   baseline  none, with the build BASELINE names (left out without one): what a change
#             costs with everything off
#   combined  access_log FILE (the combined format)
#   json      access_log FILE format=json (every field)
#   journal   access_log journal (every field), to a stand-in journald that only counts
#             datagrams, on /run/systemd/journal/socket in a private mount namespace (needs
#             root and unshare; left out otherwise)
#   ids       request_id on
#   traced    request_id on, access_log FILE format=json and tracing { sample 0.01; } with
#             spans exported to a stand-in OTLP collector (tests/integration/otlp_collector.py)
# in the same run, one worker pinned to CPU 0 and wrk (keep-alive) on CPU 1, interleaved
# rounds; the journal's stand-in runs unpinned. Prints req/s and requests per CPU-second
# of the worker (median of the rounds), each one's ratio to off and, for the journal, the
# share of entries that reached the stand-in (the others were dropped, not waited for).
#
#   bench/observe.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS] [-v]   -v: each round too
#   PERCORE=path/to/percore BASELINE=path/to/older/percore bench/observe.sh
#   SCENARIOS="off json" bench/observe.sh      only these
set -eu

DURATION=10
ROUNDS=3
CONNS=100
VERBOSE=
while getopts d:r:c:v opt; do
    case ${opt} in
    d) DURATION=${OPTARG} ;;
    r) ROUNDS=${OPTARG} ;;
    c) CONNS=${OPTARG} ;;
    v) VERBOSE=1 ;;
    *) sed -n '2,16p' "$0"; exit 1 ;;
    esac
done

BASELINE=${BASELINE:-}
SCENARIOS=${SCENARIOS:-off baseline combined json journal ids traced}
if [[ -z "${BASELINE}" ]]; then SCENARIOS=${SCENARIOS/baseline/}; fi
if [[ " ${SCENARIOS} " == *" journal "* && -z "${PERCORE_BENCH_NS:-}" ]]; then
    if [[ "$(id -u)" -eq 0 ]] && command -v unshare >/dev/null; then
        export PERCORE_BENCH_NS=1
        exec unshare -m --propagation private bash "$0" "$@"
    fi
    echo "bench: the journal needs root and unshare: left out" >&2
    SCENARIOS=${SCENARIOS/journal/}
fi

TOP=$(cd "$(dirname "$0")/.." && pwd)
PERCORE=${PERCORE:-${TOP}/_build/release/percore}
TMP=$(mktemp -d /tmp/percore-bench.XXXXXX)
SERVER_PID=
RX_PID=
COLL_PID=
trap 'stop_server; for p in ${RX_PID} ${COLL_PID}; do kill "${p}" 2>/dev/null; done; rm -rf "${TMP}"' EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing" >&2; exit 1; }
[[ -x "${PERCORE}" ]] || { echo "bench: build percore first (./quickstart.sh run)" >&2; exit 1; }
NCPU=$(nproc)
[[ "${NCPU}" -ge 2 ]] || echo "bench: fewer than 2 CPUs: the worker shares a CPU with wrk" >&2

# The journal's stand-in: counts datagrams, writing the count to a file twice a second.
if [[ " ${SCENARIOS} " == *" journal "* ]]; then
    if ! mount -t tmpfs tmpfs /run/systemd 2>/dev/null; then
        mkdir -p /run/systemd
        mount -t tmpfs tmpfs /run/systemd
    fi
    mkdir -p /run/systemd/journal
    python3 - /run/systemd/journal/socket "${TMP}/rx.count" <<'PY' &
import os, socket, sys, threading, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(sys.argv[1])
n = 0
def report():
    while True:
        with open(sys.argv[2] + ".tmp", "w") as f:
            f.write(str(n))
        os.replace(sys.argv[2] + ".tmp", sys.argv[2])
        time.sleep(0.5)
threading.Thread(target=report, daemon=True).start()
while True:
    s.recv(1 << 16)
    n += 1
PY
    RX_PID=$!
    for _ in $(seq 1 100); do [[ -S /run/systemd/journal/socket ]] && break; sleep 0.05; done
fi

free_port() {
    local used
    while :; do
        PORT=$((RANDOM % 20000 + 10000)) # below the ephemeral ports
        used=$(ss -Htln "sport = :${PORT}" || true)
        [[ -z "${used}" ]] && return
    done
}
free_port
BODY='Hello, world!\n'
HELLO_PORT=${PORT}

# The OTLP collector's stand-in, unpinned.
if [[ " ${SCENARIOS} " == *" traced "* ]]; then
    free_port
    COLL_PORT=${PORT}
    python3 "${TOP}/tests/integration/otlp_collector.py" "${COLL_PORT}" >/dev/null 2>&1 &
    COLL_PID=$!
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "http://127.0.0.1:${COLL_PORT}/count" 2>/dev/null && break
        sleep 0.05
    done
fi
PORT=${HELLO_PORT}

conf() { # SCENARIO
    printf 'workers 1;\ncpu_affinity on;\n'
    case $1 in
    ids) printf 'request_id on;\n' ;;
    traced)
        printf 'request_id on;\ntracing {\n    sample 0.01;\n'
        printf '    otlp_endpoint http://127.0.0.1:%s/v1/traces;\n}\n' "${COLL_PORT}"
        ;;
    *) ;;
    esac
    printf 'service hello {\n    listen 127.0.0.1:%s;\n' "${PORT}"
    case $1 in
    combined) printf '    access_log %s/access.log;\n' "${TMP}" ;;
    json | traced) printf '    access_log %s/access.json format=json;\n' "${TMP}" ;;
    journal) printf '    access_log journal;\n' ;;
    *) ;;
    esac
    printf '    route /hello { respond 200 "%s"; }\n}\n' "${BODY}"
}

start_server() { # SCENARIO
    local bin=${PERCORE}
    [[ $1 == baseline ]] && bin=${BASELINE}
    conf "$1" >"${TMP}/$1.conf"
    if ! "${bin}" -t -c "${TMP}/$1.conf" >"${TMP}/t.out" 2>&1; then
        echo "bench: percore refuses the $1 config:" >&2
        cat "${TMP}/t.out" >&2
        exit 1
    fi
    taskset -c 0 "${bin}" -f -c "${TMP}/$1.conf" 2>"${TMP}/percore.log" &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -sf -o /dev/null "http://127.0.0.1:${PORT}/hello" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: percore did not start with the $1 config" >&2
    cat "${TMP}/percore.log" >&2
    exit 1
}

stop_server() {
    if [[ -n "${SERVER_PID}" ]]; then
        kill -TERM "${SERVER_PID}" 2>/dev/null || true
        wait "${SERVER_PID}" 2>/dev/null || true
        SERVER_PID=
    fi
}

# TICKS: the CPU ticks (user + system) of the server's workers.
worker_ticks() {
    local p pids stat
    TICKS=0
    pids=$(pgrep -P "${SERVER_PID}" || true)
    for p in ${pids}; do
        stat=$(sed 's/^.*) //' "/proc/${p}/stat" 2>/dev/null || true)
        # shellcheck disable=SC2086 # split on purpose: one positional per stat field
        set -- ${stat}
        if [[ $# -ge 13 ]]; then TICKS=$((TICKS + ${12} + ${13})); fi
    done
}

rx_count() { cat "${TMP}/rx.count" 2>/dev/null || echo 0; }

# run_one SCENARIO: prints "rps req_per_cpu_s share_logged ok|errors"
run_one() {
    local t0 t1 hz r0 r1
    start_server "$1"
    wrk -t1 -c"${CONNS}" -d1s "http://127.0.0.1:${PORT}/hello" >/dev/null 2>&1 # warm-up
    sleep 1 # the stand-in's count settles (it is written twice a second)
    worker_ticks
    t0=${TICKS}
    r0=$(rx_count)
    taskset -c "$((NCPU > 1 ? 1 : 0))" wrk -t1 -c"${CONNS}" -d"${DURATION}s" \
        "http://127.0.0.1:${PORT}/hello" >"${TMP}/wrk.out" 2>&1
    worker_ticks
    t1=${TICKS}
    sleep 1
    r1=$(rx_count)
    stop_server
    hz=$(getconf CLK_TCK)
    awk -v ticks=$((t1 - t0)) -v hz="${hz}" -v rx=$((r1 - r0)) -v j="$([[ $1 == journal ]] && echo 1 || echo 0)" '
        /requests in/ { reqs = $1 }
        /Requests\/sec/ { rps = $2 }
        /Socket errors|Non-2xx/ { bad = 1 }
        END { cpu = ticks / hz; printf "%.0f %.0f %.3f %s\n", rps, (cpu > 0 ? reqs / cpu : 0),
              (j && reqs > 0 ? rx / reqs : 1), (bad ? "errors" : "ok") }' "${TMP}/wrk.out"
}

# median FILE FIELD: MED, the median of the FIELDth numbers of FILE's lines.
median() {
    sort -n -t' ' -k"$2,$2" "$1" -o "${TMP}/sorted"
    MED=$(awk -v f="$2" '{ v[NR] = $f } END { print v[int((NR + 1) / 2)] }' "${TMP}/sorted")
}

printf '%s, 1 worker on CPU 0, wrk on CPU 1, %s connections, %ss runs, median of %s\n\n' \
    "$("${PERCORE}" -V)" "${CONNS}" "${DURATION}" "${ROUNDS}"
for s in ${SCENARIOS}; do : >"${TMP}/${s}.res"; done
for _ in $(seq 1 "${ROUNDS}"); do
    for s in ${SCENARIOS}; do
        run_one "${s}" >>"${TMP}/${s}.res"
        [[ -n "${VERBOSE}" ]] && printf '%-10s %s\n' "${s}" "$(tail -n 1 "${TMP}/${s}.res")"
    done
done
printf '%-30s %12s %14s %10s %10s %12s\n' "scenario (GET /hello)" "req/s" "req/CPU-s" \
    "req/s÷off" "eff÷off" "logged"
declare -A RPS EFF
for s in ${SCENARIOS}; do
    median "${TMP}/${s}.res" 1
    RPS[${s}]=${MED}
    median "${TMP}/${s}.res" 2
    EFF[${s}]=${MED}
    median "${TMP}/${s}.res" 3
    logged=${MED}
    note=""
    grep -q errors "${TMP}/${s}.res" && note=" (errors seen)"
    awk -v l="${s}" -v a="${RPS[${s}]}" -v c="${EFF[${s}]}" -v b="${RPS[off]:-0}" \
        -v d="${EFF[off]:-0}" -v g="${logged}" -v n="${note}" 'BEGIN {
        printf "%-30s %12s %14s %10s %10s %12s%s\n", l, a, c,
               (b > 0 ? sprintf("%.3f", a / b) : "-"), (d > 0 ? sprintf("%.3f", c / d) : "-"),
               sprintf("%.1f%%", g * 100), n }'
done
