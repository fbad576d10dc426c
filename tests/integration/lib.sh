# shellcheck shell=bash
# Helpers for integration tests: TAP output, free loopback ports, starting and stopping
# the real percore binary. Every wait is bounded; only processes started here are stopped.

PERCORE=${PERCORE:-$(pwd)/percore}
TOP_SRCDIR=${TOP_SRCDIR:-$(pwd)}
T_NUM=0
T_FAILED=0
T_DIR=$(mktemp -d /tmp/percore-test.XXXXXX)
PC_PID=
PC_LOG=$T_DIR/percore.log

ok() {
    T_NUM=$((T_NUM + 1))
    echo "ok $T_NUM - $1"
}

not_ok() {
    T_NUM=$((T_NUM + 1))
    T_FAILED=$((T_FAILED + 1))
    echo "not ok $T_NUM - $1"
    shift
    for line in "$@"; do
        printf '%s\n' "$line" | sed 's/^/# /'
    done
}

# check NAME CMD...: one TAP line for the command's success.
check() {
    name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# expect_eq NAME GOT WANT
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:    '$2'" "wanted: '$3'"; fi
}

skip_all() {
    echo "1..0 # SKIP $1"
    exit 0
}

# bail MESSAGE: give up on the whole test, stopping the percore it started (a master left
# behind would keep its workers and ports).
bail() {
    echo "Bail out! $1"
    [ -f "$PC_LOG" ] && sed 's/^/# log: /' "$PC_LOG"
    stop_percore
    rm -rf "$T_DIR"
    exit 99
}

finish() {
    stop_percore
    echo "1..$T_NUM"
    if [ "$T_FAILED" -ne 0 ] && [ -f "$PC_LOG" ]; then
        sed 's/^/# log: /' "$PC_LOG"
    fi
    rm -rf "$T_DIR"
    [ "$T_FAILED" -eq 0 ]
}

# A loopback TCP port with nothing listening (checked with ss, then by binding it), below
# the ephemeral range so that no client connection's local port can collide with it, and
# not one this test was given before (it runs in a subshell: $T_DIR/ports remembers).
free_port() {
    low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
    [ "${low:-0}" -gt 11000 ] || low=32768
    for _ in $(seq 1 200); do
        p=$(( (RANDOM * 32768 + RANDOM) % (low - 10000) + 10000 ))
        grep -qx "$p" "$T_DIR/ports" 2>/dev/null && continue
        if [ -z "$(ss -Htln "sport = :$p")" ] &&
            python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $p))" \
                2>/dev/null; then
            echo "$p" >>"$T_DIR/ports"
            echo "$p"
            return 0
        fi
    done
    bail "no free port found"
}

# wait_for CMD...: retry for up to 20 s (generous: a loaded machine is slow).
wait_for() {
    for _ in $(seq 1 200); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}

log_has() {
    grep -q -- "$1" "$PC_LOG"
}

# start_percore CONF [ARGS...]: run in the foreground mode, wait for "ready".
start_percore() {
    conf=$1
    shift
    : > "$PC_LOG"
    "$PERCORE" -f -c "$conf" "$@" >>"$PC_LOG" 2>&1 &
    PC_PID=$!
    if ! wait_for log_has "ready:"; then
        bail "percore did not become ready"
    fi
}

stop_percore() {
    if [ -n "$PC_PID" ] && kill -0 "$PC_PID" 2>/dev/null; then
        kill -TERM "$PC_PID"
        for _ in $(seq 1 100); do
            kill -0 "$PC_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$PC_PID" 2>/dev/null
        wait "$PC_PID" 2>/dev/null
    fi
    PC_PID=
}

# established PORT: the number of established connections to a local port.
established() {
    ss -Htn state established "( sport = :$1 )" | wc -l
}

# accept_queue PORT: connections waiting in the listening sockets' accept queues.
accept_queue() {
    ss -Htln "sport = :$1" | awk '{n += $2} END {print n + 0}'
}

# worker_ends: how many times the log says a worker ended, whatever the way: an exit
# status, a signal ("died"), killed by the master, respawned.
worker_ends() {
    grep -c -e 'exited\|killed\|respawning' -e 'worker [0-9]* (pid [0-9]*[^)]*) \(died\|ended\)' \
        "$PC_LOG"
}

# Worker pids of the running master, sorted.
workers() {
    pgrep -P "$PC_PID" | sort -n
}

nworkers() {
    pgrep -c -P "$PC_PID"
}

# wait_log_count PATTERN N: wait until PATTERN appears at least N times in the log.
log_count_at_least() {
    [ "$(grep -c -- "$1" "$PC_LOG")" -ge "$2" ]
}

# make_cert CN CERT KEY: a self-signed P-256 certificate for CN (also as its DNS name),
# made by cert.sh (which the benchmarks share), or bail.
# shellcheck source=cert.sh
. "$(dirname "${BASH_SOURCE[0]}")/cert.sh"
make_cert() {
    self_signed_cert "$@" || bail "cannot make a certificate"
}

# need_tls: skip the test without openssl; else a certificate for localhost in
# $T_DIR/cert.pem and $T_DIR/key.pem, and TLS_FILES, the directives that name them for a
# TLS service.
need_tls() {
    command -v openssl >/dev/null || skip_all "openssl not installed"
    make_cert localhost "$T_DIR/cert.pem" "$T_DIR/key.pem"
    # shellcheck disable=SC2034 # read by the tests' configurations
    TLS_FILES="tls_certificate $T_DIR/cert.pem; tls_key $T_DIR/key.pem;"
}

# tls_session FILE PORT [S_CLIENT ARGS...]: save a session of 127.0.0.1:PORT in FILE,
# staying connected until it is written (TLS 1.3 tickets come after the handshake).
tls_session() {
    f=$1 p=$2
    shift 2
    rm -f "$f"
    (
        for _ in $(seq 1 200); do [ -s "$f" ] && break; sleep 0.05; done
        echo
    ) | openssl s_client "$@" -connect "127.0.0.1:$p" -sess_out "$f" >/dev/null 2>&1
}

# resumed FILE PORT [S_CLIENT ARGS...]: 1 if a new connection resumed the session, 0 if
# it made a new one, "none" if there was no handshake at all (so that "0" never passes
# for a server that is not there).
resumed() {
    f=$1 p=$2
    shift 2
    openssl s_client "$@" -connect "127.0.0.1:$p" -sess_in "$f" </dev/null 2>/dev/null |
        awk '/^Reused,/ { r = 1 } /^New,/ { n = 1 } END { print r ? 1 : n ? 0 : "none" }'
}

# hello_conf PORT [BODY]: a one-route service.
hello_conf() {
    cat <<CONF
shutdown_timeout 5s;
service hello {
    listen 127.0.0.1:$1;
    route / { respond 200 "${2:-Hello, world!\n}"; }
}
CONF
}
