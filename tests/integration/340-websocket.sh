#!/bin/bash
# WebSocket through the proxy: 1,000 messages echoed by a python3-websockets upstream, each
# checked, with a reload (SIGHUP) in the middle that cuts nothing, the old worker serving
# the tunnel until it ends; the same over TLS; bytes that come in one read with the
# request or with the 101 get through; a 101 to a request that asked for no upgrade is a
# 502; any other Upgrade is not sent on, nor is a WebSocket one over POST or with a
# body; a tunnel with nothing to say closes after its websocket_timeout; a stop (SIGTERM)
# lets an open tunnel work until shutdown_timeout, then closes it.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

HERE=$(dirname "$0")
UP_PIDS=()
CLIENT=
cleanup() {
    [[ -n "${CLIENT}" ]] && kill "${CLIENT}" 2>/dev/null
    stop_percore
    for p in "${UP_PIDS[@]}"; do kill "${p}" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
python3 -c 'import websockets' 2>/dev/null || skip_all "python3-websockets not installed"

listening() {
    [[ -n "$(ss -Htln "sport = :$1" || true)" ]]
}

PW=$(free_port) # WebSocket echo
PR=$(free_port) # a bare 101 to anything
PE=$(free_port) # HTTP echo: shows the request head it got
PORT=$(free_port)
PTLS=$(free_port)
TLS_LISTEN=
if command -v openssl >/dev/null; then
    make_cert localhost "${T_DIR}/cert.pem" "${T_DIR}/key.pem"
    TLS_LISTEN="listen 127.0.0.1:${PTLS} tls; tls_certificate ${T_DIR}/cert.pem;
    tls_key ${T_DIR}/key.pem;"
fi
python3 "${HERE}/ws_upstream.py" "${PW}" "${PR}" &
UP_PIDS+=($!)
python3 "${HERE}/echo_upstream.py" "${PE}" E &
UP_PIDS+=($!)
if ! wait_for listening "${PW}" || ! wait_for listening "${PR}" ||
    ! wait_for curl -sf -o /dev/null "http://127.0.0.1:${PE}/count"; then
    bail "upstreams did not start"
fi

# conf SHUTDOWN_TIMEOUT: two workers, a TLS listen too if openssl is there; /ws/ tunnels to the echo, /idle/ the same with a
# short websocket_timeout, /raw/ to the bare 101, /echo/ to the HTTP echo.
conf() {
    cat <<EOF
shutdown_timeout $1;
workers 2;
service ws {
    listen 127.0.0.1:${PORT};
    ${TLS_LISTEN}
    route /ws/ { proxy http://127.0.0.1:${PW}/ websocket_timeout=20s; }
    route /idle/ { proxy http://127.0.0.1:${PW}/ websocket_timeout=1s; }
    route /raw/ { proxy http://127.0.0.1:${PR}/; }
    route /echo/ { proxy http://127.0.0.1:${PE}/; }
}
EOF
}
conf 30s >"${T_DIR}/p.conf"
start_percore "${T_DIR}/p.conf"
WS="ws://127.0.0.1:${PORT}"
OUT=${T_DIR}/client.out
FLAG=${T_DIR}/go

client_says() {
    grep -q -- "$1" "${OUT}"
}

client_gone() {
    ! kill -0 "${CLIENT}" 2>/dev/null
}

# end_client: wait (bounded) for the background client; its exit status.
end_client() {
    wait_for client_gone || return 1
    wait "${CLIENT}"
    rc=$?
    CLIENT=
    return "${rc}"
}

# 1. 1,000 messages, a reload after 500.
python3 "${HERE}/ws_client.py" echo "${WS}/ws/one" 1000 500 "${FLAG}" >"${OUT}" 2>&1 &
CLIENT=$!
wait_for client_says paused || bail "the client did not get half way: $(<"${OUT}")"
done_before=$(grep -c "reload done" "${PC_LOG}")
kill -HUP "${PC_PID}"
wait_for log_count_at_least "reload done" $((done_before + 1)) || bail "the reload did not end"
# Two new workers, and of the old ones the one holding the tunnel (the other has ended).
# workers_are N: the master has N workers.
workers_are() {
    n=$(nworkers) || true
    [[ "${n}" -eq "$1" ]]
}
check "the old worker holding the tunnel runs on after the reload" wait_for workers_are 3
touch "${FLAG}"
end_client
rc=$?
expect_eq "1,000 messages echoed, a reload in the middle" "${rc}:$(<"${OUT}")" \
    "0:paused
echoed 1000"
# Once the tunnel ended the old worker is done, well before its shutdown_timeout (30s).
check "the old worker ends once its tunnel closed" wait_for workers_are 2
if log_has "shutdown_timeout reached"; then
    not_ok "no worker reached shutdown_timeout"
else
    ok "no worker reached shutdown_timeout"
fi

if [[ -n "${TLS_LISTEN}" ]]; then
    out=$(WS_CA="${T_DIR}/cert.pem" python3 "${HERE}/ws_client.py" echo \
        "wss://127.0.0.1:${PTLS}/ws/tls" 200 2>&1)
    expect_eq "200 messages echoed over TLS" "${out}" "echoed 200"
else
    ok "200 messages echoed over TLS # SKIP no openssl"
fi

# 2. A 101 answered to a plain request; other upgrades.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT}/raw/x")
expect_eq "a 101 to a request that asked for no upgrade is a 502" "${code}" 502
got=$(python3 "${HERE}/ws_client.py" raw "${PORT}" /raw/ws 2>&1)
expect_eq "a frame sent with the request, and one with the 101, get through" "${got}" \
    "101, hello, frame back"

# upgrade_headers CURL-ARGS...: the Upgrade and Connection the HTTP echo got, as
# "upgrade=...;connection=...".
upgrade_headers() {
    body=$(curl -s "$@" "http://127.0.0.1:${PORT}/echo/x") || true
    python3 -c '
import json, sys
h = {k.lower(): v for k, v in json.load(sys.stdin)["headers"]}
print("upgrade=%s;connection=%s" % (h.get("upgrade", "-"), h.get("connection", "-")))' \
        <<<"${body}"
}
got=$(upgrade_headers -H 'Connection: Upgrade' -H 'Upgrade: foo/1')
expect_eq "an Upgrade other than websocket is not sent on" "${got}" \
    "upgrade=-;connection=keep-alive"
got=$(upgrade_headers -d x -H 'Connection: Upgrade' -H 'Upgrade: websocket')
expect_eq "a WebSocket upgrade over POST is not sent on" "${got}" \
    "upgrade=-;connection=keep-alive"
got=$(upgrade_headers -X GET -d hello -H 'Connection: Upgrade' -H 'Upgrade: websocket')
expect_eq "a WebSocket upgrade with a body (Content-Length) is not sent on" "${got}" \
    "upgrade=-;connection=keep-alive"
got=$(upgrade_headers -X GET -d hello -H 'Transfer-Encoding: chunked' -H 'Connection: Upgrade' \
    -H 'Upgrade: websocket')
expect_eq "nor one with a chunked body" "${got}" "upgrade=-;connection=keep-alive"
got=$(upgrade_headers -H 'Upgrade: websocket')
expect_eq "an Upgrade that Connection does not list is not sent on" "${got}" \
    "upgrade=-;connection=keep-alive"
got=$(upgrade_headers -H 'Connection: keep-alive, Upgrade' -H 'Upgrade: WebSocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')
expect_eq "a WebSocket upgrade is sent on (the upstream may answer it with a 200)" "${got}" \
    "upgrade=websocket;connection=upgrade"

# 3. The idle timeout (1s on /idle/).
out=$(python3 "${HERE}/ws_client.py" idle "${WS}/idle/x" 2>&1)
secs=${out#closed after }
if [[ "${out}" == "closed after "* ]] && python3 -c "import sys; sys.exit(not 0.8 <= ${secs} <= 10)"; then
    ok "an idle tunnel closes after its websocket_timeout (${secs} s for 1 s)"
else
    not_ok "an idle tunnel closes after its websocket_timeout" "${out}"
fi

# 4. A stop with a tunnel open: it works on until shutdown_timeout (3s), then closes.
stop_percore
conf 3s >"${T_DIR}/p.conf"
start_percore "${T_DIR}/p.conf"
rm -f "${FLAG}"
python3 "${HERE}/ws_client.py" until-close "${WS}/ws/stop" "${FLAG}" >"${OUT}" 2>&1 &
CLIENT=$!
wait_for client_says paused || bail "the client did not start: $(<"${OUT}")"
kill -TERM "${PC_PID}"
wait_for log_has "stopping: draining" || bail "the stop did not begin"
touch "${FLAG}"
end_client
rc=$?
line=$(tail -n 1 "${OUT}")
n=$(sed -n 's/^echoed \([0-9]*\) after go.*/\1/p' <<<"${line}")
secs=${line##* }
if [[ "${rc}" -eq 0 && "${n:-0}" -ge 5 ]] &&
    python3 -c "import sys; sys.exit(not 1.5 <= ${secs:-0} <= 12)"; then
    ok "a stop lets a tunnel work until shutdown_timeout (${n} echoes, closed after ${secs} s of 3 s)"
else
    not_ok "a stop lets a tunnel work until shutdown_timeout" "$(<"${OUT}")"
fi
check "the worker says it closed the tunnel at shutdown_timeout" \
    log_has "shutdown_timeout reached with 1 connections open (1 websocket tunnels)"
master_gone() { ! kill -0 "${PC_PID}" 2>/dev/null; }
check "the master stops" wait_for master_gone
finish
