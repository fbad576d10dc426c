#!/bin/bash
# What routing costs: percore serving GET /hello (respond 200) from
#   one      a service with one route (`route /hello`)
#   many     a service with 200 routes: 100 regex (`~ ^/rN/(\d+)$`), 50 prefix, 49 exact, and
#            `route /hello` as a prefix route, so every request is tried against the regexes
#   const    the one route with `header X-Id` set to a constant
#   reqid    the one route with `header X-Id $request_id` (a variable expanded per request)
# in the same run, one worker pinned to CPU 0 and wrk (keep-alive) on CPU 1, interleaved
# rounds. Prints req/s and requests per CPU-second of the worker (median of the rounds),
# and the ratios many/one (the route table's cost) and reqid/const (a variable's cost).
#
#   bench/routes.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]
#   PERCORE=path/to/percore bench/routes.sh
#   SCENARIOS="one many" bench/routes.sh        only these (a ratio needs both of its own)
#   BASELINE=path/to/other/percore bench/routes.sh   adds "base": the one-route config
#                                                  served by that build, and one/base
set -eu

DURATION=10
ROUNDS=3
CONNS=100
while getopts d:r:c: opt; do
    case ${opt} in
    d) DURATION=${OPTARG} ;;
    r) ROUNDS=${OPTARG} ;;
    c) CONNS=${OPTARG} ;;
    *) sed -n '2,15p' "$0"; exit 1 ;;
    esac
done

TOP=$(cd "$(dirname "$0")/.." && pwd)
PERCORE=${PERCORE:-${TOP}/_build/release/percore}
TMP=$(mktemp -d /tmp/percore-bench.XXXXXX)
SERVER_PID=
trap 'stop_server; rm -rf "${TMP}"' EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing" >&2; exit 1; }
[[ -x "${PERCORE}" ]] || { echo "bench: build percore first (./quickstart.sh run)" >&2; exit 1; }
NCPU=$(nproc)
[[ "${NCPU}" -ge 2 ]] || echo "bench: fewer than 2 CPUs: the worker shares a CPU with wrk" >&2

# A loopback port nothing listens on, in PORT.
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

# conf SCENARIO: the configuration of a scenario.
conf() {
    printf 'workers 1;\ncpu_affinity on;\nservice hello {\n    listen 127.0.0.1:%s;\n' "${PORT}"
    case $1 in
    many)
        for i in $(seq 1 100); do
            printf '    route ~ ^/r%d/(\\d+)$ { respond 200 "r%d\\n"; }\n' "${i}" "${i}"
        done
        for i in $(seq 1 50); do
            printf '    route /p%d/ { respond 200 "p%d\\n"; }\n' "${i}" "${i}"
        done
        for i in $(seq 1 49); do
            printf '    route = /e%d { respond 200 "e%d\\n"; }\n' "${i}" "${i}"
        done
        ;;
    *) ;;
    esac
    printf '    route /hello {\n'
    case $1 in
    const) printf '        header X-Id 0123456789abcdef0123456789abcdef;\n' ;;
    reqid)
        # shellcheck disable=SC2016 # percore expands it, not the shell
        printf '        header X-Id $request_id;\n'
        ;;
    *) ;;
    esac
    printf '        respond 200 "%s";\n    }\n}\n' "${BODY}"
}

start_server() { # SCENARIO
    local bin=${PERCORE}
    [[ $1 == base ]] && bin=${BASELINE}
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

# check_answers SCENARIO: the scenario answers what it should, or the figures mean nothing
# (a 404 is cheaper than a 200).
check_answers() {
    local head body id
    curl -s -D "${TMP}/head" -o "${TMP}/body" "http://127.0.0.1:${PORT}/hello" || true
    head=$(tr -d '\r' <"${TMP}/head")
    body=$(cat "${TMP}/body")
    id=$(sed -n 's/^x-id: //Ip' <<<"${head}")
    if [[ "${head}" != "HTTP/1.1 200"* || "${body}" != "Hello, world!" ]]; then
        echo "bench: $1: /hello answers '${head%%$'\n'*}' '${body}'" >&2
        exit 1
    fi
    case $1 in
    const | reqid)
        if [[ ! "${id}" =~ ^[0-9a-f]{32}$ ]]; then
            echo "bench: $1: X-Id is '${id}', not 32 hex digits" >&2
            exit 1
        fi
        ;;
    many)
        for u in /r7/42:r7 /p9/x:p9 /e3:e3; do
            body=$(curl -s "http://127.0.0.1:${PORT}${u%:*}")
            if [[ "${body}" != "${u#*:}" ]]; then
                echo "bench: many: ${u%:*} answers '${body}', not '${u#*:}'" >&2
                exit 1
            fi
        done
        ;;
    *) ;;
    esac
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

# run_one SCENARIO: prints "rps req_per_cpu_s ok|errors"
run_one() {
    local t0 t1 hz
    start_server "$1"
    check_answers "$1"
    wrk -t1 -c"${CONNS}" -d1s "http://127.0.0.1:${PORT}/hello" >/dev/null 2>&1 # warm-up
    worker_ticks
    t0=${TICKS}
    taskset -c "$((NCPU > 1 ? 1 : 0))" wrk -t1 -c"${CONNS}" -d"${DURATION}s" \
        "http://127.0.0.1:${PORT}/hello" >"${TMP}/wrk.out" 2>&1
    worker_ticks
    t1=${TICKS}
    stop_server
    hz=$(getconf CLK_TCK)
    awk -v ticks=$((t1 - t0)) -v hz="${hz}" '
        /requests in/ { reqs = $1 }
        /Requests\/sec/ { rps = $2 }
        /Socket errors|Non-2xx/ { bad = 1 }
        END { cpu = ticks / hz; printf "%.0f %.0f %s\n", rps, (cpu > 0 ? reqs / cpu : 0),
              (bad ? "errors" : "ok") }' "${TMP}/wrk.out"
}

# median FILE FIELD: MED, the median of the FIELDth numbers of FILE's lines.
median() {
    sort -n -t' ' -k"$2,$2" "$1" -o "${TMP}/sorted"
    MED=$(awk -v f="$2" '{ v[NR] = $f } END { print v[int((NR + 1) / 2)] }' "${TMP}/sorted")
}

SCENARIOS=${SCENARIOS:-one many const reqid${BASELINE:+ base}}
[[ -z "${BASELINE:-}" || -x "${BASELINE}" ]] || { echo "bench: ${BASELINE} is not executable" >&2; exit 1; }
VERSION=$("${PERCORE}" -V)
printf '%s, 1 worker on CPU 0, wrk on CPU 1, %s connections, %ss runs, median of %s\n\n' \
    "${VERSION}" "${CONNS}" "${DURATION}" "${ROUNDS}"
for s in ${SCENARIOS}; do : >"${TMP}/${s}.res"; done
for _ in $(seq 1 "${ROUNDS}"); do
    for s in ${SCENARIOS}; do
        run_one "${s}" >>"${TMP}/${s}.res"
    done
done
printf '%-44s %12s %14s\n' "scenario (GET /hello)" "req/s" "req/CPU-s"
declare -A RPS EFF
for s in ${SCENARIOS}; do
    median "${TMP}/${s}.res" 1
    RPS[${s}]=${MED}
    median "${TMP}/${s}.res" 2
    EFF[${s}]=${MED}
    note=""
    grep -q errors "${TMP}/${s}.res" && note=" (errors seen)"
    case ${s} in
    one) label="one: 1 route" ;;
    many) label="many: 200 routes (100 regex, 50 prefix, 49 =)" ;;
    const) label="const: header X-Id <constant>" ;;
    reqid) label="reqid: header X-Id \$request_id" ;;
    base) label="base: 1 route, the BASELINE build" ;;
    *) label=${s} ;;
    esac
    printf '%-44s %12s %14s%s\n' "${label}" "${RPS[${s}]}" "${EFF[${s}]}" "${note}"
done
ratio() { # LABEL A B: the ratios A/B of req/s and of req/CPU-s, if both ran
    [[ -n "${RPS[$2]:-}" && -n "${RPS[$3]:-}" ]] || return 0
    awk -v l="$1" -v a="${RPS[$2]}" -v b="${RPS[$3]}" -v c="${EFF[$2]}" -v d="${EFF[$3]}" \
        'BEGIN { printf "%-44s %12.3f %14.3f\n", l, (b > 0 ? a / b : 0), (d > 0 ? c / d : 0) }'
}
ratio "ratio many/one (the route table)" many one
ratio "ratio reqid/const (a variable)" reqid const
ratio "ratio one/base (this build against BASELINE)" one base
