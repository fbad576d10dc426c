#!/bin/bash
# One worker per CPU, reuseport spreading, CPU pinning.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v wrk >/dev/null || skip_all "wrk not installed"
PORT=$(free_port)
CONF=$T_DIR/percore.conf
URL=http://127.0.0.1:$PORT/

hello_conf "$PORT" >"$CONF"
start_percore "$CONF" -w 2
expect_eq "-w 2 starts 2 workers" "$(nworkers)" "2"
expect_eq "one reuseport socket per worker" "$(ss -Htln "sport = :$PORT" | wc -l)" "2"
expect_eq "workers are named by slot" "$(ps -o comm= -p "$(workers | paste -sd,)" | sort | tr '\n' ' ')" \
    "percore-w0 percore-w1 "

# Keep-alive connections from wrk must land on both workers.
wrk -t2 -c32 -d3s "$URL" >"$T_DIR/wrk.out" 2>&1 &
WRK=$!
all_up() { [ "$(established "$PORT")" -ge 32 ]; }
wait_for all_up
PIDS=$(ss -Htnp state established "( sport = :$PORT )" | grep -o 'pid=[0-9]*' | sort -u | wc -l)
wait "$WRK"
expect_eq "connections reach every worker" "$PIDS" "2"
check "wrk saw no socket errors" sh -c "! grep -q 'Socket errors' '$T_DIR/wrk.out'"
check "wrk saw no non-2xx responses" sh -c "! grep -q 'Non-2xx' '$T_DIR/wrk.out'"
stop_percore

# `workers auto` follows the affinity mask.
printf 'workers auto;\n' >"$CONF"
hello_conf "$PORT" >>"$CONF"
: > "$PC_LOG"
taskset -c 0 "$PERCORE" -f -c "$CONF" >>"$PC_LOG" 2>&1 &
PC_PID=$!
wait_for log_has "ready:" || bail "not ready"
expect_eq "workers auto under a 1-CPU affinity mask: 1 worker" "$(nworkers)" "1"
stop_percore

NCPU=$(nproc)
start_percore "$CONF"
expect_eq "workers auto: one worker per usable CPU" "$(nworkers)" "$NCPU"
stop_percore

# cpu_affinity on pins worker i to the i-th allowed CPU.
if [ "$NCPU" -ge 2 ]; then
    printf 'workers 2;\ncpu_affinity on;\n' >"$CONF"
    hello_conf "$PORT" >>"$CONF"
    start_percore "$CONF"
    got=""
    for pid in $(workers); do
        slot=$(ps -o comm= -p "$pid" | sed 's/percore-w//')
        got="$got w$slot:$(taskset -cp "$pid" | sed 's/.*: //')"
    done
    expect_eq "cpu_affinity on pins each worker" "$(echo "${got# }" | tr ' ' '\n' | sort | tr '\n' ' ')" \
        "w0:0 w1:1 "
    expect_eq "pinned workers serve" "$(curl -s "$URL")" "Hello, world!"
    stop_percore
fi

finish
