#!/bin/bash
# A storm against percore under load, with figures. percore (2 workers) serves a hello route
# and a proxy route to a local upstream, over HTTP/1.1 and HTTP/2 (TLS); wrk with keep-alive,
# wrk with `Connection: close` and h2load run through phases while the script sends SIGHUPs
# (every few with a bad config, then the good one again), SIGKILLs random workers and
# SIGSTOPs one for 2 s. Prints per phase and client the requests sent, failed (a status
# other than 2xx/3xx, a reset, a refused connection, a timeout), resets, connect errors and
# p99; then one PASS or FAIL line per target, and exits 0 only if all pass:
#   reloads       no request fails in the reload phase, every bad config is refused while
#                 the old generation keeps serving it
#   kills         a killed worker loses at most its in-flight requests (one per HTTP/1.1
#                 connection open to it, h2load's -m per HTTP/2 connection)
#   quiet phases  no request fails in the phases with no kill (baseline, stop, final)
#   fds, rss      the master's and the workers' open fds and VmRSS, at rest after a
#                 warm-up and after the storm: fds the same, RSS within a tolerance
#   log           no worker ended other than by the script's kills, no sanitizer report,
#                 percore stops with status 0 after the storm
#
#   bench/storm.sh [-h] [-n RELOADS] [-b BAD_EVERY] [-k KILLS] [-s STOPS] [-d SECONDS]
#                  [-w WORKERS] [-c CONNECTIONS] [-t RSS_KB]
#   PERCORE=path/to/percore bench/storm.sh
#   bench/storm.sh -C PID [-R TIMES] [-c CONNECTIONS]
#       the fd-store storm under a real systemd: PID is the PID 1 (as the host sees it) of a
#       booted container with percore installed and serving 127.0.0.1:8080 (the package's
#       config), as tests/e2e/systemd.sh makes one. Under wrk (keep-alive and close) from
#       inside it: `systemctl restart percore` TIMES times (one per 2.5 s: systemd's start
#       limit), then `systemctl reload` TIMES times, each phase with no failed request and no
#       refused connection.
#
# Needs wrk, h2load (nghttp2-client), curl, openssl, python3 and ss; run as root for the
# per-worker connection counts (ss -p on sockets of another user's processes).
set -u
# The system's tools first (Debian's python3 starts fast; a version manager's shim may not).
PATH=/usr/bin:/bin:$PATH

RELOADS=100
BAD_EVERY=5
KILLS=10
STOPS=1
DURATION=10
WORKERS=2
CONNS=32
RSS_TOL=2048
CONTAINER=
RESTARTS=20
# The header comment above, without its '#'.
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
while getopts hn:b:k:s:d:w:c:t:C:R: opt; do
    case $opt in
    n) RELOADS=$OPTARG ;; b) BAD_EVERY=$OPTARG ;; k) KILLS=$OPTARG ;;
    s) STOPS=$OPTARG ;; d) DURATION=$OPTARG ;; w) WORKERS=$OPTARG ;;
    c) CONNS=$OPTARG ;; t) RSS_TOL=$OPTARG ;; C) CONTAINER=$OPTARG ;;
    R) RESTARTS=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

TOP=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PERCORE:-}" ]; then
    for b in "$TOP/_build/release/percore" "$TOP/_build/h/percore" "$TOP/percore"; do
        [ -x "$b" ] && PERCORE=$b && break
    done
fi
TMP=$(mktemp -d /tmp/percore-storm.XXXXXX)
PIDS=()
PC_PID=
FAILS=0
H2_STREAMS=10
H2_CONNS=4
CLOSE_CONNS=8

# ---- shared: clients' figures ----

# wrk's script: requests cycle over the paths given after `--`; done() prints one line of
# figures (statuses counted by each thread, wrk's own error counters, p99).
cat >"$TMP/count.lua" <<'LUA'
local threads = {}
function setup(thread)
    table.insert(threads, thread)
end
function init(args)
    codes, n, paths = {}, 0, {}
    for i = 1, #args do paths[i] = args[i] end
    if #paths == 0 then paths[1] = "/" end
end
function request()
    n = n + 1
    return wrk.format(nil, paths[n % #paths + 1])
end
function response(status, headers, body)
    codes[status] = (codes[status] or 0) + 1
end
function done(summary, latency, requests)
    local bad = 0
    for _, t in ipairs(threads) do
        for code, count in pairs(t:get("codes")) do
            if code < 200 or code > 399 then bad = bad + count end
        end
    end
    local e = summary.errors
    io.write(string.format(
        "figures: requests %d badstatus %d connect %d read %d write %d timeout %d p99us %d\n",
        summary.requests, bad, e.connect, e.read, e.write, e.timeout, latency:percentile(99)))
end
LUA

# wrk_figures FILE: "sent failed resets connect p99ms" from a wrk run with count.lua.
wrk_figures() {
    awk '/^figures:/ {
        sent = $3 + $9 + $11; failed = $5 + $7 + $9 + $11 + $13
        printf "%d %d %d %d %.1f\n", sent, failed, $9 + $11, $7, $15 / 1000; f = 1 }
        END { if (!f) print "0 1 0 0 -" }' "$1"
}

# h2_figures PREFIX: the same from h2load runs' --log-file PREFIX.N.log (start in µs since
# the epoch, status or -1 for a stream that failed, µs taken). A stream whose start is 0 was
# never sent: h2load queued it on a connection the server had already closed with a GOAWAY
# (a graceful close, after which a client opens a new connection) and counts it as failed;
# it is left out here. Connection errors come from h2load's own output.
h2_figures() {
    conn=$(for f in "$1".*; do case $f in *.log) ;; *) cat "$f" ;; esac; done 2>/dev/null |
        grep -c 'could not connect')
    p99=$(cat "$1".*.log 2>/dev/null | awk '$1 != 0 {print $3}' | sort -n | awk '
        { v[NR] = $1 }
        END { i = int(NR * 0.99 + 0.5); if (i < 1) i = 1
              if (NR) printf "%.1f", v[i] / 1000; else print "-" }')
    cat "$1".*.log 2>/dev/null | awk -v conn="$conn" -v p99="$p99" '
        $1 == 0 { unsent++; next }
        { sent++ }
        $2 == -1 { resets++ }
        $2 == -1 || $2 < 200 || $2 > 399 { failed++ }
        END { if (!sent) failed++
              printf "%d %d %d %d %s %d\n", sent, failed + conn, resets, conn, p99, unsent }'
}

HEADER="phase     secs client          sent  failed  resets  connerr    p99ms  events"
row() { # PHASE SECONDS CLIENT FIGURES EVENTS
    # shellcheck disable=SC2086 # the figures are five words
    set -- "$1" "$2" "$3" $4 "$5"
    printf '%-9s %4s %-10s %9s %7s %7s %8s %8s  %s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9"
}

verdict() { # PASS|FAIL TARGET DETAIL
    [ "$1" = FAIL ] && FAILS=$((FAILS + 1))
    printf '%s %s: %s\n' "$1" "$2" "$3"
}

judge() { # TARGET DETAIL CMD...: PASS if the command succeeds
    t=$1 d=$2
    shift 2
    if "$@"; then verdict PASS "$t" "$d"; else verdict FAIL "$t" "$d"; fi
}

cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
    if [ -n "$PC_PID" ] && kill -0 "$PC_PID" 2>/dev/null; then
        kill -TERM "$PC_PID"
        for _ in $(seq 1 150); do kill -0 "$PC_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PC_PID" 2>/dev/null
    fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${STORM_KEEP:-}" ]; then echo "storm: files kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

wait_for() { # CMD...: retry for up to 30 s
    for _ in $(seq 1 300); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# ---- the fd-store storm in a container ----

container_storm() {
    L=$CONTAINER
    case $L in '' | 0 | 1 | *[!0-9]*) echo "storm: -C wants a pid" >&2; exit 2 ;; esac
    E() { nsenter -t "$L" -a "$@"; }
    E test -x /usr/bin/wrk || { echo "storm: no wrk in the container" >&2; exit 2; }
    E sh -c 'cat >/root/count.lua' <"$TMP/count.lua"
    [ "$(E curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/)" = 200 ] ||
        { echo "storm: nothing serves 127.0.0.1:8080 in the container" >&2; exit 2; }
    echo "storm: $RESTARTS restarts and $RESTARTS reloads through systemd in container $L"
    echo "$HEADER"
    for what in restart reload; do
        # nsenter forks wrk into the container's pid namespace: its child is wrk.
        t0=$SECONDS
        nsenter -t "$L" -a wrk -t1 -c"$CONNS" -d3600s --timeout 10s -s /root/count.lua \
            http://127.0.0.1:8080/ >"$TMP/c.$what.ka" 2>&1 &
        KA=$!
        nsenter -t "$L" -a wrk -t1 -c4 -d3600s --timeout 10s -H 'Connection: close' -s /root/count.lua \
            http://127.0.0.1:8080/ >"$TMP/c.$what.close" 2>&1 &
        CL=$!
        PIDS+=("$KA" "$CL")
        # shellcheck disable=SC2317 # called through wait_for
        c_loaded() {
            [ "$(E ss -Htn state established '( dport = :8080 )' | wc -l)" -ge "$CONNS" ]
        }
        wait_for c_loaded || echo "storm: wrk did not connect in the container" >&2
        done_ok=0
        last=0
        for _ in $(seq 1 "$RESTARTS"); do
            # systemd refuses a sixth start within 10 s (StartLimitBurst=5 in
            # StartLimitIntervalSec=10s, the defaults): restarts go at most one per 2.5 s.
            while [ "$what" = restart ] && [ $(($(date +%s%N) / 1000000 - last)) -lt 2500 ]; do
                sleep 0.1
            done
            last=$(($(date +%s%N) / 1000000))
            E systemctl "$what" percore && done_ok=$((done_ok + 1))
        done
        # The last restart's workers serve some requests too.
        E curl -s -m 10 -o /dev/null http://127.0.0.1:8080/
        for p in $KA $CL; do kill -INT "$(pgrep -P "$p")" 2>/dev/null; done
        wait "$KA" "$CL"
        PIDS=()
        fka=$(wrk_figures "$TMP/c.$what.ka")
        fcl=$(wrk_figures "$TMP/c.$what.close")
        row "$what" $((SECONDS - t0)) wrk-ka "$fka" "$done_ok/$RESTARTS systemctl $what"
        row "$what" $((SECONDS - t0)) wrk-close "$fcl" ""
        failed=$(( $(echo "$fka" | cut -d' ' -f2) + $(echo "$fcl" | cut -d' ' -f2) ))
        sent=$(( $(echo "$fka" | cut -d' ' -f1) + $(echo "$fcl" | cut -d' ' -f1) ))
        judge "systemctl $what x$RESTARTS" \
            "$done_ok succeeded, $failed of $sent requests failed" \
            test "$done_ok" -eq "$RESTARTS" -a "$failed" -eq 0 -a "$sent" -gt 0
    done
    [ "$FAILS" -eq 0 ]
    exit
}

[ -n "$CONTAINER" ] && container_storm

# ---- the storm on this machine ----

for t in wrk h2load curl openssl python3 ss; do
    command -v "$t" >/dev/null || { echo "storm: $t is missing" >&2; exit 2; }
done
[ -x "${PERCORE:-}" ] || { echo "storm: no percore binary (PERCORE=)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || echo "storm: not root: ss may not name the workers' connections" >&2

# A loopback port with nothing listening, below the ephemeral range (no client connection
# can take it), not one given before.
free_port() {
    low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
    [ "${low:-0}" -gt 11000 ] || low=32768
    for _ in $(seq 1 200); do
        p=$(( (RANDOM * 32768 + RANDOM) % (low - 10000) + 10000 ))
        grep -qx "$p" "$TMP/ports" 2>/dev/null && continue
        if [ -z "$(ss -Htln "sport = :$p")" ] &&
            python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', $p))" 2>/dev/null
        then
            echo "$p" >>"$TMP/ports"
            echo "$p"
            return 0
        fi
    done
    echo "storm: no free port" >&2
    exit 2
}
PORT=$(free_port)
H2PORT=$(free_port)
UPORT=$(free_port)
CONF=$TMP/percore.conf
LOG=$TMP/percore.log
# shellcheck source=../tests/integration/cert.sh
. "$TOP/tests/integration/cert.sh"
self_signed_cert localhost "$TMP/cert.pem" "$TMP/key.pem" || { echo "storm: openssl" >&2; exit 2; }

python3 "$TOP/tests/integration/upstream.py" "$UPORT" U 2>"$TMP/upstream.err" &
PIDS+=($!)
wait_for curl -sf -o /dev/null "http://127.0.0.1:$UPORT/stats" ||
    { echo "storm: the upstream did not start" >&2; exit 2; }

write_conf() { # BODY [bad]
    cat >"$CONF" <<CONF
workers $WORKERS;
shutdown_timeout 10s;
service plain {
    listen 127.0.0.1:$PORT;
    route /up/ { proxy http://127.0.0.1:$UPORT/; }
    route / { respond 200 "$1"; }
}
service h2 {
    listen 127.0.0.1:$H2PORT tls http2;
    tls_certificate $TMP/cert.pem;
    tls_key $TMP/key.pem;
    route /up/ { proxy http://127.0.0.1:$UPORT/; }
    route / { respond 200 "$1"; }
}
CONF
    [ "${2:-}" = bad ] && echo 'wrokers 3;' >>"$CONF"
}

log_count() { grep -c -- "$1" "$LOG"; }
log_more() { [ "$(log_count "$1")" -gt "$2" ]; } # PATTERN N: more than N lines match
workers() { pgrep -P "$PC_PID" | sort -n; }
nworkers() { pgrep -c -P "$PC_PID"; }
established() { ss -Htn state established "( sport = :$PORT or sport = :$H2PORT )" | wc -l; }

write_conf "storm a"
"$PERCORE" -f -c "$CONF" >"$LOG" 2>&1 &
PC_PID=$!
wait_for grep -q 'ready:' "$LOG" || { echo "storm: percore did not start" >&2; cat "$LOG"; exit 2; }
BODY="storm a"

# ---- phases ----

PHASE=
start_clients() { # PHASE
    PHASE=$1 PHASE_T0=$SECONDS
    rm -f "$TMP/stop"
    wrk -t1 -c"$CONNS" -d3600s --timeout 10s -s "$TMP/count.lua" "http://127.0.0.1:$PORT" \
        -- / / / /up/ >"$TMP/$PHASE.ka" 2>&1 &
    WKA=$!
    wrk -t1 -c"$CLOSE_CONNS" -d3600s --timeout 10s -H 'Connection: close' \
        -s "$TMP/count.lua" "http://127.0.0.1:$PORT" -- / / / /up/ >"$TMP/$PHASE.close" 2>&1 &
    WCL=$!
    # h2load stops only at the end of its -D: short runs, one after the other, until told.
    (
        i=0
        while [ ! -e "$TMP/stop" ] && [ "$i" -lt 10000 ]; do
            i=$((i + 1))
            # h2load (1.52) can spin for ever after a connection of its is reset during
            # the TLS handshake (a killed worker): a run is stopped 20 s after its end.
            # Its per-request log is written as it goes and still counts.
            timeout -k 2 22 h2load -D 2 -c "$H2_CONNS" -m "$H2_STREAMS" -t 1 \
                --log-file="$TMP/$PHASE.h2.$i.log" \
                "https://127.0.0.1:$H2PORT/" "https://127.0.0.1:$H2PORT/" \
                "https://127.0.0.1:$H2PORT/" "https://127.0.0.1:$H2PORT/up/" \
                >"$TMP/$PHASE.h2.$i" 2>&1
            rc=$?
            [ ! -e "$TMP/stop" ] && [ "$rc" -ge 124 ] && echo hung >>"$TMP/$PHASE.h2hung"
        done
    ) 2>/dev/null &
    WH2=$!
    PIDS+=("$WKA" "$WCL" "$WH2")
    loaded() { [ "$(established)" -ge $((CONNS + H2_CONNS)) ]; }
    wait_for loaded || echo "storm: clients not all connected in phase $PHASE" >&2
}

# stop_clients EVENTS: print the phase's rows; leaves "failed sent" of all clients in
# PHASE_FAILED and PHASE_SENT, h2load's in PHASE_H2_FAILED and PHASE_H2_SENT.
stop_clients() {
    touch "$TMP/stop"
    kill -INT "$WKA" "$WCL"
    # The h2load run under way: what it has done is in its log already.
    pkill -TERM -P "$WH2"
    wait "$WKA" "$WCL" "$WH2"
    PIDS=("${PIDS[0]}")
    PHASE_FAILED=0 PHASE_SENT=0 PHASE_H2_FAILED=0 PHASE_H2_SENT=0 ev=$1
    for c in ka close h2; do
        name=wrk-$c
        if [ $c = h2 ]; then
            name=h2load
            f=$(h2_figures "$TMP/$PHASE.h2")
            unsent=${f##* }
            f=${f% *}
            [ "$unsent" -gt 0 ] && ev="${ev:+$ev; }$unsent not sent after a GOAWAY"
            [ -s "$TMP/$PHASE.h2hung" ] &&
                ev="${ev:+$ev; }$(wc -l <"$TMP/$PHASE.h2hung") h2load runs hung and were stopped"
        else
            f=$(wrk_figures "$TMP/$PHASE.$c")
        fi
        row "$PHASE" $((SECONDS - PHASE_T0)) "$name" "$f" "$ev"
        ev=
        PHASE_SENT=$((PHASE_SENT + $(echo "$f" | cut -d' ' -f1)))
        PHASE_FAILED=$((PHASE_FAILED + $(echo "$f" | cut -d' ' -f2)))
        [ $c = h2 ] && PHASE_H2_FAILED=$(echo "$f" | cut -d' ' -f2) &&
            PHASE_H2_SENT=$(echo "$f" | cut -d' ' -f1)
    done
}

# rest NAME: once no client is connected, the proxy's pool has closed its idle upstream
# connections and only the serving generation runs, the master's and each worker's open fds
# and VmRSS (kB), "fds rss" in $TMP/NAME.master and NAME.workers.
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
nfds() { find "/proc/$1/fd" -mindepth 1 | wc -l; }
upstream_conns() { ss -Htn state established "( dport = :$UPORT )" | wc -l; }
rest() {
    quiet() {
        [ "$(established)" -eq 0 ] && [ "$(upstream_conns)" -eq 0 ] &&
            [ "$(nworkers)" -eq "$WORKERS" ]
    }
    wait_for quiet || echo "storm: not at rest for $1: $(established) connections," \
        "$(upstream_conns) upstream, $(nworkers) workers" >&2
    echo "$(nfds "$PC_PID") $(rss "$PC_PID")" >"$TMP/$1.master"
    for w in $(workers); do echo "$(nfds "$w") $(rss "$w")"; done | sort -n >"$TMP/$1.workers"
}

echo "storm: percore $PERCORE, $WORKERS workers; wrk -c$CONNS keep-alive, wrk -c$CLOSE_CONNS" \
    "close, h2load -c$H2_CONNS -m$H2_STREAMS; 1 request in 4 proxied"
echo "$HEADER"

# Baseline: the load alone; then the figures at rest that the storm is compared to.
start_clients baseline
sleep "$DURATION"
stop_clients "none"
QUIET_FAILED=$PHASE_FAILED
rest before

# Reloads: every BAD_EVERY-th a bad config, refused; the good one is back for the next.
start_clients reload
good=0 bad=0 bad_served=0
for i in $(seq 1 "$RELOADS"); do
    if [ "$BAD_EVERY" -gt 0 ] && [ $((i % BAD_EVERY)) -eq 0 ]; then
        n=$(log_count "reload failed")
        write_conf "$BODY" bad
        kill -HUP "$PC_PID"
        wait_for log_more "reload failed" "$n" && bad=$((bad + 1))
        [ "$(curl -s -m 10 "http://127.0.0.1:$PORT/")" = "$BODY" ] && bad_served=$((bad_served + 1))
        write_conf "$BODY"
    else
        BODY=$([ "$BODY" = "storm a" ] && echo "storm b" || echo "storm a")
        n=$(log_count "reload done")
        write_conf "$BODY"
        kill -HUP "$PC_PID"
        wait_for log_more "reload done" "$n" && good=$((good + 1))
    fi
done
NBAD=0
[ "$BAD_EVERY" -gt 0 ] && NBAD=$((RELOADS / BAD_EVERY))
stop_clients "$good good + $bad bad SIGHUPs"
RELOAD_FAILED=$((PHASE_FAILED - PHASE_H2_FAILED)) RELOAD_SENT=$((PHASE_SENT - PHASE_H2_SENT))
RELOAD_H2_FAILED=$PHASE_H2_FAILED RELOAD_H2_SENT=$PHASE_H2_SENT
rest reloaded

# lived_ms PID: how long the process has run, in ms (its start in clock ticks after boot).
lived_ms() {
    awk -v hz="$(getconf CLK_TCK)" -v up="$(cut -d' ' -f1 /proc/uptime)" \
        '{ sub(/^.*\) /, ""); printf "%d\n", (up - $20 / hz) * 1000 }' "/proc/$1/stat" 2>/dev/null ||
        echo 0
}

# Kills: a random worker that has lived a while (a worker dying young counts toward the
# crash-loop back-off); stopped first so the connections counted are all it has when it
# dies.
start_clients kill
kills=0 bound1=0 bound2=0
for _ in $(seq 1 "$KILLS"); do
    settled() {
        [ "$(nworkers)" -eq "$WORKERS" ] || return 1
        old=$(for w in $(workers); do [ "$(lived_ms "$w")" -ge 1200 ] && echo "$w"; done)
        [ -n "$old" ]
    }
    wait_for settled || continue
    # shellcheck disable=SC2086 # one pid a word
    set -- $old
    v=$(eval echo "\${$((RANDOM % $# + 1))}")
    kill -STOP "$v"
    conns=$(ss -Htnp state established "( sport = :$PORT or sport = :$H2PORT )" | grep "pid=$v,")
    h1=$(printf '%s\n' "$conns" | grep -c ":$PORT ")
    h2=$(printf '%s\n' "$conns" | grep -c ":$H2PORT ")
    bound1=$((bound1 + h1))
    bound2=$((bound2 + h2 * H2_STREAMS))
    n=$(log_count "respawning")
    kill -KILL "$v"
    wait_for log_more "respawning" "$n" && kills=$((kills + 1))
    wait_for loaded
done
stop_clients "$kills SIGKILLs"
KILL_FAILED1=$((PHASE_FAILED - PHASE_H2_FAILED)) KILL_FAILED2=$PHASE_H2_FAILED

# Stops: a worker SIGSTOPped for 2 s (about time itself: a stall of the length a user sees)
# and continued; nothing may fail (the watchdog waits longer).
start_clients stop
stops=0
for _ in $(seq 1 "$STOPS"); do
    sleep 1
    v=$(workers | shuf -n 1)
    [ -n "$v" ] || continue
    kill -STOP "$v" && sleep 2 && kill -CONT "$v" && stops=$((stops + 1))
done
sleep 1
stop_clients "$stops SIGSTOP 2 s + SIGCONT"
QUIET_FAILED=$((QUIET_FAILED + PHASE_FAILED))

# Final: the load alone again, so the workers compared have served what the first did.
start_clients final
sleep "$DURATION"
stop_clients "none"
QUIET_FAILED=$((QUIET_FAILED + PHASE_FAILED))
rest after

echo
printf '%-8s %6s %9s   %s\n' at-rest fds rss-kB "workers (fds rss-kB)"
for r in before reloaded after; do
    read -r fds kb <"$TMP/$r.master"
    printf '%-8s %6s %9s   %s\n' "$r" "$fds" "$kb" "$(tr ' ' / <"$TMP/$r.workers" | paste -sd' ')"
done
echo

judge "reloads" "$good/$((RELOADS - NBAD)) good and $bad/$NBAD bad SIGHUPs taken, bad ones\
 served the old config $bad_served/$NBAD; $RELOAD_FAILED of $RELOAD_SENT HTTP/1.1 requests failed" \
    test "$RELOAD_FAILED" -eq 0 -a "$good" -eq $((RELOADS - NBAD)) -a "$bad" -eq "$NBAD" \
    -a "$bad_served" -eq "$NBAD" -a "$RELOAD_SENT" -gt 0
judge "reloads, HTTP/2" "$RELOAD_H2_FAILED of $RELOAD_H2_SENT requests sent failed" \
    test "$RELOAD_H2_FAILED" -eq 0 -a "$RELOAD_H2_SENT" -gt 0
judge "kills" "$kills/$KILLS workers killed and respawned; HTTP/1.1: $KILL_FAILED1 failed\
 requests, at most $bound1 allowed (the connections open to them); HTTP/2: $KILL_FAILED2, at\
 most $bound2 ($H2_STREAMS streams per connection)" \
    test "$kills" -eq "$KILLS" -a "$KILL_FAILED1" -le "$bound1" -a "$KILL_FAILED2" -le "$bound2"
judge "quiet phases" "$QUIET_FAILED failed requests in baseline, stop and final" \
    test "$QUIET_FAILED" -eq 0
read -r mfd0 mrss0 <"$TMP/before.master"
read -r mfd1 mrss1 <"$TMP/after.master"
judge "master fds" "$mfd0 before, $mfd1 after" test "$mfd0" -eq "$mfd1"
wfds() { cut -d' ' -f1 "$TMP/$1.workers" | paste -sd,; }
judge "worker fds" "$(wfds before) before, $(wfds after) after, $(wfds reloaded) in fresh workers" \
    test "$(wfds before)" = "$(wfds after)" -a "$(wfds after)" = "$(wfds reloaded)"
wrss0=$(cut -d' ' -f2 "$TMP/before.workers" | sort -n | tail -n 1)
wrss1=$(cut -d' ' -f2 "$TMP/after.workers" | sort -n | tail -n 1)
# A sanitizer's allocator keeps freed memory in quarantine: RSS says nothing of leaks there
# (LeakSanitizer reports them at each worker's exit and the master's, checked below).
if nm -D "$PERCORE" 2>/dev/null | grep -q __asan_init; then
    echo "SKIP master rss: $mrss0 kB before, $mrss1 kB after (sanitizer build)"
    echo "SKIP worker rss: largest $wrss0 kB before, $wrss1 kB after (sanitizer build)"
else
    judge "master rss" "$mrss0 kB before, $mrss1 kB after (tolerance $RSS_TOL kB)" \
        test "$mrss1" -le $((mrss0 + RSS_TOL))
    judge "worker rss" "largest $wrss0 kB before, $wrss1 kB after (tolerance $RSS_TOL kB)" \
        test "$wrss1" -le $((wrss0 + RSS_TOL))
fi

# Stop percore, so that its exit is in the log too.
kill -TERM "$PC_PID"
for _ in $(seq 1 300); do kill -0 "$PC_PID" 2>/dev/null || break; sleep 0.1; done
wait "$PC_PID"
STATUS=$?
PC_PID=
# What a sanitizer build reports, and a worker that died or exited badly other than by the
# script's SIGKILLs, is in the master's log.
odd=$(grep -e 'Sanitizer' -e 'runtime error' -e 'while draining' -e 'ended (status' \
    -e 'died (signal [0-8]' -e 'died (signal [1-9][0-9]' "$LOG")
judge "log" "$(printf '%s\n' "$odd" | grep -c .) unexpected worker ends or sanitizer reports;\
 percore stopped with status $STATUS" test -z "$odd" -a "$STATUS" -eq 0
[ -n "$odd" ] && printf '%s\n' "$odd" | head -n 20 | sed 's/^/    /'
if [ "$FAILS" -eq 0 ]; then echo "storm: PASS"; else echo "storm: FAIL ($FAILS targets)"; fi
[ "$FAILS" -eq 0 ]
