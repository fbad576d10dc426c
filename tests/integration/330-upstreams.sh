#!/bin/bash
# Upstream groups: `upstream NAME { server ...; }` named by proxy lines; weighted round
# robin; a consistent hash that moves only the keys of a server that leaves; retries on
# chosen statuses, for idempotent requests only, within the retry budget; passive
# ejection; a stopped (SIGSTOP) server under load costs the client nothing; https://
# servers verified (right CA, wrong CA, wrong name, verify off); positioned config errors.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO="$(dirname "$0")/echo_upstream.py"
D=${T_DIR}
UP_PIDS=()
STOPPED=
cleanup() {
    [[ -n "${STOPPED}" ]] && kill -CONT "${STOPPED}" 2>/dev/null
    stop_percore
    for p in "${UP_PIDS[@]}"; do kill "${p}" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
command -v openssl >/dev/null || skip_all "openssl not installed"

# start_upstream LABEL PORT [SCHEME]: an echo upstream (env: ECHO_STATUS, ECHO_TLS_*),
# answering before this returns; its pid in LAST_UP.
start_upstream() {
    python3 "${ECHO}" "$2" "$1" &
    LAST_UP=$!
    UP_PIDS+=("${LAST_UP}")
    wait_for curl -skf -o /dev/null "${3:-http}://127.0.0.1:$2/count" ||
        bail "upstream $1 did not start"
}

# count PORT [SCHEME]: requests the upstream on PORT has answered.
count() {
    curl -sk "${2:-http}://127.0.0.1:$1/count" | python3 -c \
        'import json, sys; print(json.load(sys.stdin)["requests"])' 2>/dev/null || echo "?"
}

# labels URL N [CURL-ARGS...]: the upstream label of each of N answers, one per line.
labels() {
    local url=$1 n=$2
    shift 2
    for _ in $(seq 1 "${n}"); do
        curl -s -m 10 "$@" "${url}" | python3 -c \
            'import json, sys; print(json.load(sys.stdin)["upstream"])' 2>/dev/null ||
            echo "-"
    done
}

PA=$(free_port)
PB=$(free_port)
PC=$(free_port)
PF=$(free_port)  # answers 503 to everything
PG=$(free_port)  # 503 too
PT=$(free_port)  # https
PDEAD=$(free_port)
PORT=$(free_port)
URL="http://127.0.0.1:${PORT}"
start_upstream A "${PA}"
start_upstream B "${PB}"
start_upstream C "${PC}"
UP_C=${LAST_UP}
ECHO_STATUS=503 start_upstream F "${PF}"
ECHO_STATUS=503 start_upstream G "${PG}"
make_cert upstream.test "${D}/up.pem" "${D}/up.key"
make_cert other.test "${D}/other.pem" "${D}/other.key"
ECHO_TLS_CERT="${D}/up.pem" ECHO_TLS_KEY="${D}/up.key" start_upstream T "${PT}" https

cat >"${D}/p.conf" <<EOF
workers 1;
upstream weighted {
    server http://127.0.0.1:${PA} weight=3;
    server http://127.0.0.1:${PB};
}
upstream hashed {
    server http://127.0.0.1:${PA};
    server http://127.0.0.1:${PB};
    server http://127.0.0.1:${PC};
    balance hash \$http_x_user;
    max_fails 1;
    fail_timeout 60s;
}
upstream retrying {
    server http://127.0.0.1:${PF};
    server http://127.0.0.1:${PB};
    retries 1;
    retry_on error 503;
    retry_budget 100%;
    max_fails 0;
}
upstream failing {
    server http://127.0.0.1:${PF};
    server http://127.0.0.1:${PG};
    retries 1;
    retry_on 503;
    retry_budget 20%;
    max_fails 0;
}
upstream ejecting {
    server http://127.0.0.1:${PDEAD};
    server http://127.0.0.1:${PA};
    max_fails 1;
    fail_timeout 60s;
}
upstream pausing {
    server http://127.0.0.1:${PA};
    server http://127.0.0.1:${PB};
    timeout 1s;
    retries 1;
    retry_on error timeout;
    max_fails 1;
    fail_timeout 60s;
}
upstream capped {
    server http://127.0.0.1:${PA} max_inflight=1;
    queue 1 timeout=20s;
}
upstream capped_short {
    server http://127.0.0.1:${PB} max_inflight=1;
    queue 4 timeout=300ms;
}
upstream tls_ok {
    server https://127.0.0.1:${PT};
    tls_ca ${D}/up.pem;
    tls_name upstream.test;
}
upstream tls_wrong_ca {
    server https://127.0.0.1:${PT};
    tls_ca ${D}/other.pem;
    tls_name upstream.test;
}
upstream tls_wrong_name {
    server https://127.0.0.1:${PT};
    tls_ca ${D}/up.pem;
    tls_name other.test;
}
upstream tls_unverified {
    server https://127.0.0.1:${PT};
    tls_verify off;
}
service s {
    listen 127.0.0.1:${PORT};
    route /w/ { proxy http://weighted/v1/; }
    route /h/ { proxy http://hashed/; }
    route /r/ { proxy http://retrying/; }
    route /f/ { proxy http://failing/; }
    route /e/ { proxy http://ejecting/; }
    route /p/ { proxy http://pausing/; }
    route /cap/ { proxy http://capped/; }
    route /capshort/ { proxy http://capped_short/; }
    route /tls/ { proxy http://tls_ok/; }
    route /tlsca/ { proxy http://tls_wrong_ca/; }
    route /tlsname/ { proxy http://tls_wrong_name/; }
    route /tlsoff/ { proxy http://tls_unverified/; }
}
EOF
"${PERCORE}" -t -c "${D}/p.conf" >"${D}/t.out" 2>&1 || bail "config refused: $(cat "${D}/t.out")"
start_percore "${D}/p.conf"

# ---- weighted round robin ----
labels "${URL}/w/x" 40 | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }' >"${D}/w"
expect_eq "weights 3:1 over 40 requests" "$(cat "${D}/w")" "A=30 B=10 "
GOT=$(curl -s "${URL}/w/x/y?q=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
expect_eq "the proxy line's path is prefixed to the request's" "${GOT}" "/v1/x/y?q=1"

# ---- responses without a body ----
# The echo upstream sends a body with its 204 anyway (a broken server): the client gets no
# Content-Length, and the next request through the same worker gets its own answer.
HEAD204=$(curl -s -D - -o /dev/null "${URL}/w/status/204" | tr -d '\r' | grep -ic '^content-length' || true)
expect_eq "a 204 goes without the upstream's Content-Length" "${HEAD204}" "0"
GOT=$(curl -s "${URL}/w/status/204" "${URL}/w/after" | python3 -c \
    'import json, sys; print(json.load(sys.stdin)["path"])' 2>/dev/null || echo "not JSON")
expect_eq "a body sent after a 204 answers no later request" "${GOT}" "/v1/after"
GOT=$(curl -s -I "${URL}/w/x" -o /dev/null -w '%{http_code}'; curl -s "${URL}/w/y" | python3 -c \
    'import json, sys; print(json.load(sys.stdin)["path"])' 2>/dev/null || echo "not JSON")
expect_eq "nor one after a HEAD" "${GOT}" "200/v1/y"

# ---- consistent hash ----
for u in $(seq 1 60); do
    printf '%s %s\n' "${u}" "$(labels "${URL}/h/x" 1 -H "X-User: user${u}")"
done >"${D}/before"
for u in $(seq 1 60); do
    printf '%s %s\n' "${u}" "$(labels "${URL}/h/x" 1 -H "X-User: user${u}")"
done >"${D}/again"
expect_eq "the same key goes to the same server" "$(cmp -s "${D}/before" "${D}/again" && echo same)" "same"
check "keys spread over the three servers ($(awk '{print $2}' "${D}/before" | sort | uniq -c | tr '\n' ' '))" \
    test "$(awk '{print $2}' "${D}/before" | sort -u | tr -d '\n')" = ABC
kill "${UP_C}"
wait "${UP_C}" 2>/dev/null
for u in $(seq 1 60); do
    printf '%s %s\n' "${u}" "$(labels "${URL}/h/x" 1 -H "X-User: user${u}")"
done >"${D}/after"
MOVED=$(join "${D}/before" "${D}/after" | awk '$2 != "C" && $2 != $3' | wc -l)
expect_eq "a server leaving moves none of the other servers' keys" "${MOVED}" "0"
LOST=$(awk '$2 != "A" && $2 != "B"' "${D}/after" | wc -l)
expect_eq "and its own keys are served by the others" "${LOST}" "0"

# ---- retries ----
B0=$(count "${PB}")
F0=$(count "${PF}")
BAD=0
for _ in $(seq 1 20); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "${URL}/r/x")" == 200 ]] || BAD=$((BAD + 1))
done
expect_eq "retry_on 503: 20 GETs through a server answering 503 all get 200" "${BAD}" "0"
check "the 503 server was tried ($(($(count "${PF}") - F0)) times)" [ "$(($(count "${PF}") - F0))" -ge 5 ]
expect_eq "and the other answered each once" "$(($(count "${PB}") - B0))" "20"
P503=0
F0=$(count "${PF}")
B0=$(count "${PB}")
for _ in $(seq 1 10); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x "${URL}/r/x")" == 503 ]] && P503=$((P503 + 1))
done
check "a POST is never retried: some of 10 got the 503 (${P503})" [ "${P503}" -ge 1 ]
expect_eq "each POST reached one server once" "$(($(count "${PF}") - F0 + $(count "${PB}") - B0))" "10"

# ---- retry budget: both servers fail ----
F0=$(count "${PF}")
G0=$(count "${PG}")
curl -s -Z --parallel-max 10 -o /dev/null "${URL}/f/[1-300]"
ATTEMPTS=$(($(count "${PF}") - F0 + $(count "${PG}") - G0))
check "300 requests to two failing servers: attempts within the 20% budget (${ATTEMPTS})" \
    [ "${ATTEMPTS}" -le $((300 * 120 / 100 + 10)) -a "${ATTEMPTS}" -gt 300 ]
expect_eq "and the client gets the upstream's 503" \
    "$(curl -s -w ' %{http_code}' "${URL}/f/x")" "upstream 503
 503"

# ---- passive ejection ----
BAD=0
for _ in $(seq 1 10); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "${URL}/e/x")" == 200 ]] || BAD=$((BAD + 1))
done
expect_eq "a dead server: 10 requests, no failure" "${BAD}" "0"
expect_eq "it is skipped after its failure, logged once" \
    "$(grep -c "server 'http://127.0.0.1:${PDEAD}' is down for 60 s: 1 failed request within 60 s (the last: cannot connect)" "${PC_LOG}")" "1"

# ---- max_inflight ----
A0=$(count "${PA}")
curl -s -o "${D}/slow.out" -w '%{http_code}' "${URL}/cap/slow" >"${D}/slow.code" &
SLOW=$!
a_grew() { [[ "$(count "${PA}")" -gt "${A0}" ]]; }
wait_for a_grew || not_ok "the slow request reached the server"
# Two more meanwhile: one waits in the queue (of 1) and is answered once the slow one is,
# the other finds the queue full and gets 503 at once.
curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "${URL}/cap/x" >"${D}/q1" &
Q1=$!
curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "${URL}/cap/x" >"${D}/q2" &
Q2=$!
wait "${Q1}" "${Q2}"
wait "${SLOW}"
expect_eq "and the first is answered" "$(cat "${D}/slow.code")" "200"
expect_eq "max_inflight=1, queue 1: of two more requests, one waits and is answered, one gets 503" \
    "$(cat "${D}/q1" "${D}/q2" | cut -d' ' -f1 | sort | paste -sd' ' -)" "200 503"
FAST=$(awk '$1 == 503 { print ($2 < 1.5) }' "${D}/q1" "${D}/q2")
expect_eq "the 503 came at once, not after the slow request" "${FAST}" "1"
B0=$(count "${PB}")
curl -s -o /dev/null "${URL}/capshort/slow" &
SLOW2=$!
b_grew() { [[ "$(count "${PB}")" -gt "${B0}" ]]; }
wait_for b_grew || not_ok "the slow request reached the server"
read -r CODE TIME < <(curl -s -o "${D}/short.body" -w '%{http_code} %{time_total}\n' \
    "${URL}/capshort/x")
wait "${SLOW2}"
expect_eq "a request queued longer than the queue's timeout (300ms) gets 503" \
    "${CODE} $(cat "${D}/short.body")" "503 upstream servers busy"
check "after about 300 ms (${TIME} s)" \
    awk -v t="${TIME}" 'BEGIN { exit !(t >= 0.29 && t < 1.9) }'
expect_eq "then the server takes requests again" \
    "$(curl -s -o /dev/null -w '%{http_code}' "${URL}/cap/x")" "200"

# ---- a server stopped under load ----
kill -STOP "${UP_PIDS[1]}"
STOPPED=${UP_PIDS[1]}
wrk -t1 -c8 -d3s "${URL}/p/x" >"${D}/wrk.out" 2>&1
kill -CONT "${STOPPED}"
STOPPED=
REQS=$(awk '/requests in/ { print $1 }' "${D}/wrk.out")
check "SIGSTOP on one server under wrk: ${REQS:-no} requests, no error or non-2xx" \
    sh -c "[ '${REQS:-0}' -gt 100 ] && ! grep -q 'Non-2xx\|Socket errors' '${D}/wrk.out'"
check "the stopped server is skipped (logged)" \
    log_has "server 'http://127.0.0.1:${PB}' is down for 60 s: 1 failed request within 60 s (the last: no response in time)"

# ---- TLS ----
fetch_label() { LBL=$(labels "$1" 1); }
fetch_label "${URL}/tls/x"
expect_eq "https:// server with its CA and name: answered" "${LBL}" "T"
for _ in $(seq 1 20); do curl -s -o /dev/null "${URL}/tls/x"; done
expect_eq "over kept connections: 20 more answered" "$(count "${PT}" https)" "21"
expect_eq "a wrong CA: 502" "$(curl -s -o /dev/null -w '%{http_code}' "${URL}/tlsca/x")" "502"
check "the log names the verification error" log_has "certificate verify failed"
expect_eq "a wrong name: 502" "$(curl -s -o /dev/null -w '%{http_code}' "${URL}/tlsname/x")" "502"
check "the log names the name" log_has "not 'other.test'"
fetch_label "${URL}/tlsoff/x"
expect_eq "tls_verify off: answered" "${LBL}" "T"
stop_percore

# ---- config errors ----
# bad_conf NAME BODY WANT: percore -t refuses BODY (a whole config) with WANT in its message.
bad_conf() {
    printf '%s\n' "$2" >"${D}/bad.conf"
    "${PERCORE}" -t -c "${D}/bad.conf" >"${D}/bad.out" 2>&1
    local rc=$?
    check "$1 (exit ${rc})" sh -c "[ ${rc} -ne 0 ] && grep -q -- \"\$1\" '${D}/bad.out'" _ "$3"
}
SVC="service s { listen 127.0.0.1:${PORT}; route / { proxy http://g/; } }"
bad_conf "an upstream without server" "upstream g { } ${SVC}" "bad.conf:1:1: upstream 'g' has no 'server'"
bad_conf "a server with a path" "upstream g { server http://127.0.0.1:1/x; } ${SVC}" \
    "the path goes on the proxy line"
bad_conf "a bad weight" "upstream g { server http://127.0.0.1:1 weight=0; } ${SVC}" \
    "bad.conf:1:40: invalid weight '0'"
bad_conf "an unknown retry_on word" "upstream g { server http://127.0.0.1:1; retry_on 404; } ${SVC}" \
    "invalid retry_on '404'"
bad_conf "tls settings without an https server" \
    "upstream g { server http://127.0.0.1:1; tls_verify off; } ${SVC}" "no https:// server"
bad_conf "a missing CA file" \
    "upstream g { server https://127.0.0.1:1; tls_ca ${D}/none.pem; } ${SVC}" "none.pem"
bad_conf "a duplicate upstream" \
    "upstream g { server http://127.0.0.1:1; } upstream g { server http://127.0.0.1:2; } ${SVC}" \
    "duplicate upstream 'g'"
bad_conf "balance hash without a value" \
    "upstream g { server http://127.0.0.1:1; balance hash; } ${SVC}" "needs the value to hash"
bad_conf "a queue that is no number" \
    "upstream g { server http://127.0.0.1:1; queue many; } ${SVC}" \
    "bad.conf:1:47: invalid queue 'many'"
bad_conf "a queue option that is no timeout" \
    "upstream g { server http://127.0.0.1:1; queue 5 wait=1s; } ${SVC}" \
    "bad.conf:1:49: invalid queue option 'wait=1s'"
bad_conf "'server' outside an upstream block" "server { } ${SVC}" "upstream block"
printf 'service s { listen 127.0.0.1:%s; route / { proxy http://later/; } }\nupstream later { server http://127.0.0.1:1; }\n' \
    "${PORT}" >"${D}/later.conf"
check "a group may be defined after the proxy line naming it" "${PERCORE}" -t -c "${D}/later.conf"
finish
