#!/bin/bash
# The health handler, as a load balancer sees it: 200 "ok" while percore serves; 503
# "draining" with Connection: close from the moment a stop begins, through shutdown_delay
# (while the other routes still answer); 200 throughout a reload, also from the old
# generation while it drains. GET and HEAD only, never compressed nor stored.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

KAPOLL="$(dirname "$0")/kapoll.py"
D=${T_DIR}
KP=
cleanup() {
    stop_percore
    [[ -n "${KP}" ]] && kill "${KP}" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT

PORT=$(free_port)
CONF=${D}/percore.conf
BASE=http://127.0.0.1:${PORT}

write_conf() { # PLAIN_BODY
    cat >"${CONF}" <<CONF
workers 2;
shutdown_delay 4s;
shutdown_timeout 5s;
service s {
    listen 127.0.0.1:${PORT};
    route = /healthz { health; compress on; }
    route / { respond 200 "$1\n"; }
}
CONF
}

# fetch CURL-ARGS...: one request on a new connection; CODE, BODY (each byte as od shows
# it, so that the final newline counts) and HEAD (the response's header lines, without
# CR) for the checks.
fetch() {
    CODE=$(curl -s -m 10 -D "${D}/h" -o "${D}/b" -w '%{http_code}' "$@")
    BODY=$(od -An -c "${D}/b" 2>/dev/null | tr -s ' ' || true)
    HEAD=$(tr -d '\r' <"${D}/h" 2>/dev/null)
}

# has_header LINE: whether the last fetch's response has the header line LINE (its name
# in any case).
has_header() {
    grep -qix -- "$1" <<<"${HEAD}"
}

# health_is STATUS: whether health now answers STATUS to a new connection.
health_is() {
    local c
    c=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "${BASE}/healthz")
    [[ "${c}" = "$1" ]]
}

# kapoll OUT: a health checker on one kept-alive connection (kapoll.py), in the background
# (KP), returning once it has its first answer.
kapoll() {
    rm -f "$1"
    python3 "${KAPOLL}" "${PORT}" "$1" /healthz &
    KP=$!
    wait_for test -s "$1" || bail "the kept-alive health checker got no answer"
}

# ---- serving ----
write_conf v1
start_percore "${CONF}"
fetch -H 'Accept-Encoding: gzip' "${BASE}/healthz"
expect_eq "GET answers 200" "${CODE}" "200"
expect_eq "with the body ok" "${BODY}" " o k \n"
check "as text/plain" has_header 'content-type: text/plain; charset=utf-8'
check "never to be stored" has_header 'cache-control: no-store'
check "never compressed (compress on, gzip accepted)" \
    test -z "$(grep -i '^content-encoding' <<<"${HEAD}" || true)"
fetch -I "${BASE}/healthz"
expect_eq "HEAD answers 200" "${CODE}" "200"
check "with the GET's length" has_header 'content-length: 3'
# The whole answer to a HEAD on a connection closed after it: the head, and not a byte
# after its blank line.
exec 3<>"/dev/tcp/127.0.0.1/${PORT}"
printf 'HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
timeout 10 cat <&3 >"${D}/raw"
exec 3<&-
expect_eq "and no body" "$(tail -c 4 "${D}/raw" | od -An -c | tr -s ' ' || true)" " \r \n \r \n"
fetch -X POST -d x "${BASE}/healthz"
expect_eq "POST answers 405" "${CODE}" "405"
check "with Allow: GET, HEAD" has_header 'allow: GET, HEAD'
printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { health 200; }\n}\n' "${PORT}" \
    >"${D}/bad.conf"
"${PERCORE}" -t -c "${D}/bad.conf" >"${D}/t.out" 2>&1
check "health takes no arguments" \
    grep -q "wrong number of arguments for 'health'; usage: health$" "${D}/t.out"

# ---- a reload is no stop ----
kapoll "${D}/kr"
: >"${D}/codes"
write_conf v2
kill -HUP "${PC_PID}"
# reload_over: the new generation serves, the kept-alive checker's connection to an old
# worker has ended (its drain closes it after one more answer) and only the new workers
# are left.
reload_over() {
    log_has "reload done" && grep -qx closed "${D}/kr" && [[ "$(nworkers || true)" -eq 2 ]]
}
# New connections all along, at least 20 of them.
for i in $(seq 1 400); do
    curl -s -o /dev/null -m 10 -w '%{http_code}\n' "${BASE}/healthz" >>"${D}/codes"
    if [[ "${i}" -ge 20 ]] && reload_over; then
        break
    fi
done
wait "${KP}"
KP=
check "the reload finished" reload_over
fetch "${BASE}/"
expect_eq "the new generation serves" "${BODY}" " v 2 \n"
N=$(wc -l <"${D}/codes")
CODES=$(sort -u "${D}/codes")
expect_eq "health answered 200 to every one of ${N} new connections" "${CODES}" "200"
# All but its last line ("closed"), each kind once.
KR=$(sed -e '$d' "${D}/kr" | sort -u | paste -sd, || true)
expect_eq "and to the kept-alive checker, also the last answer of the old worker's drain" \
    "${KR}" "200 /healthz close,200 /healthz keep-alive"
KR=$(tail -n 1 "${D}/kr")
expect_eq "whose connection then ended" "${KR}" "closed"

# ---- a stop ----
kapoll "${D}/ks"
MPID=${PC_PID}
kill -TERM "${MPID}"
check "health answers 503 once the stop has begun" wait_for health_is 503
fetch "${BASE}/"
expect_eq "while the other routes still answer" "${CODE} ${BODY}" "200  v 2 \n"
if log_has "stopping after shutdown_delay" && ! log_has "stopping: draining"; then
    ok "both within shutdown_delay"
else
    not_ok "both within shutdown_delay" "$(cat "${PC_LOG}" || true)"
fi
fetch "${BASE}/healthz"
expect_eq "with the body draining" "${BODY}" " d r a i n i n g \n"
check "and Connection: close" has_header 'connection: close'
check "never to be stored" has_header 'cache-control: no-store'
wait "${KP}"
KP=
KS=$(tail -n 2 "${D}/ks" | paste -sd, || true)
expect_eq "the kept-alive checker is told too, and its connection closed" \
    "${KS}" "503 /healthz close,closed"
check "it had 200 before" grep -qx '200 /healthz keep-alive' "${D}/ks"
wait_for sh -c "! kill -0 ${MPID} 2>/dev/null"
wait "${MPID}"
expect_eq "percore then stops, with status 0" "$?" "0"
PC_PID=
check "after draining" log_has "stopping: draining"
LISTENING=$(ss -Htln "sport = :${PORT}")
expect_eq "nothing listens after the stop" "${LISTENING}" ""

finish
