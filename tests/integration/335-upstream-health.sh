#!/bin/bash
# Upstream health shared by every worker: active checks run once per instance, not once
# per worker, take a dead server out for every worker and bring it back after `rise`
# passed checks; a worker that dies hands its checks over; passive ejection seen by one
# worker holds for all; health and counters survive a reload; `percore -s status` and the
# metrics show them; checks over TLS, verified; positioned config errors.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO="$(dirname "$0")/echo_upstream.py"
D=${T_DIR}
UP_PIDS=()
MPIDS=()
cleanup() {
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

# counted PORT KIND [SCHEME]: requests or health checks the upstream on PORT has answered.
counted() {
    curl -sk "${3:-http}://127.0.0.1:$1/count" | python3 -c \
        "import json, sys; print(json.load(sys.stdin)['$2'])" 2>/dev/null || echo "-1"
}

# labels PATH N: the upstream label of each of N answers (new connections), one per line.
labels() {
    for _ in $(seq 1 "$2"); do
        curl -s -m 10 "${URL}$1" | python3 -c \
            'import json, sys; print(json.load(sys.stdin)["upstream"])' 2>/dev/null ||
            echo "-"
    done
}

status() {
    "${PERCORE}" -c "${CONF}" -s status 2>&1
}

# status_has PATTERN: a line of -s status matches the extended regex.
status_has() {
    status | grep -Eq "$1"
}

# checks_reach PORT N [SCHEME]: the upstream on PORT has answered N health checks or more.
checks_reach() {
    [[ $(counted "$1" checks "${3:-http}") -ge $2 ]]
}

# metric NAME LABELS: one sample's value from the metrics handler.
metric() {
    curl -s "${URL}/metrics" | awk -v k="$1{$2}" '$1 == k { print $2 }'
}

PA=$(free_port)
PB=$(free_port)
PC=$(free_port)
PF=$(free_port) # answers 503 to everything
PT=$(free_port) # https
PDEAD=$(free_port) # nothing listens
PORT=$(free_port)
URL="http://127.0.0.1:${PORT}"
start_upstream A "${PA}"
start_upstream B "${PB}"
PB_PID=${LAST_UP}
start_upstream C "${PC}"
ECHO_STATUS=503 start_upstream F "${PF}"
make_cert upstream.test "${D}/up.pem" "${D}/up.key"
ECHO_TLS_CERT="${D}/up.pem" ECHO_TLS_KEY="${D}/up.key" start_upstream T "${PT}" https

CONF="${D}/percore.conf"
write_conf() {
    cat >"${CONF}" <<EOF
workers 2;
shutdown_timeout 5s;
upstream checked {
    server http://127.0.0.1:${PA};
    server http://127.0.0.1:${PB};
    health_check /healthz interval=200ms timeout=1s fall=2 rise=2;
}
upstream passive {
    server http://127.0.0.1:${PC};
    server http://127.0.0.1:${PF};
    retries 1;
    retry_on 503;
    max_fails 1;
    fail_timeout 60s;
}
upstream mixed {
    server http://127.0.0.1:${PC} max_inflight=1;
    server http://127.0.0.1:${PDEAD};
    health_check /healthz interval=200ms timeout=1s fall=1 rise=2;
    queue 8 timeout=30s;
}
upstream tls_checked {
    server https://127.0.0.1:${PT};
    tls_ca ${D}/up.pem;
    tls_name upstream.test;
    health_check /healthz interval=200ms fall=1 rise=1;
}
upstream tls_wrong_name {
    server https://127.0.0.1:${PT};
    tls_ca ${D}/up.pem;
    tls_name other.test;
    health_check /healthz interval=200ms fall=1 rise=1;
}
service s {
    listen 127.0.0.1:${PORT};
    route = /metrics { metrics; }
    route /c/ { proxy http://checked/; }
    route /p/ { proxy http://passive/; }
    route /m/ { proxy http://mixed/; }
    route = /generation { respond 200 "$1"; }
}
EOF
}
write_conf one
start_percore "${CONF}"

B_UP="upstream checked server http://127.0.0.1:${PB}: up since"
B_DOWN="upstream checked server http://127.0.0.1:${PB}: down since .* \\(health check: "
check "-s status lists each server, up" wait_for status_has "${B_UP}"

# ---- once per instance ----
wait_for checks_reach "${PA}" 2 || bail "no health check reached A"
C0=$(counted "${PA}" checks)
T0=$(date +%s%N)
wait_for checks_reach "${PA}" $((C0 + 10))
MS=$((($(date +%s%N) - T0) / 1000000))
# Two workers each checking every 200 ms would make 10 checks in about 1 s; one instance
# needs 9 intervals at least (a loaded machine only makes it slower).
check "10 checks of one server took ${MS} ms: one checker for two workers, not two" \
    [ "${MS}" -ge 1500 ]
check "health checks are no requests for the counters" \
    [ "$(metric percore_upstream_requests_total "upstream=\"checked\",server=\"http://127.0.0.1:${PA}\"")" = 0 ]

# ---- over TLS ----
check "an https server is checked over TLS, verified" wait_for checks_reach "${PT}" 2 https
check "and stays up" status_has "upstream tls_checked server https://127.0.0.1:${PT}: up since"
check "one whose certificate is not for the name is down" wait_for status_has \
    "upstream tls_wrong_name server https://127.0.0.1:${PT}: down since .* \\(health check: TLS handshake failed\\)"

# ---- a dead server is out for every worker ----
kill "${PB_PID}"
wait "${PB_PID}" 2>/dev/null
check "a stopped server is down after 2 failed checks" \
    wait_for status_has "${B_DOWN}connection refused\\)"
check "the metrics say so" \
    [ "$(metric percore_upstream_up "upstream=\"checked\",server=\"http://127.0.0.1:${PB}\"")" = 0 ]
check "the log says so, once" \
    [ "$(grep -c "server 'http://127.0.0.1:${PB}' is down: 2 health checks failed in a row" "${PC_LOG}")" = 1 ]
ERRS0=$(curl -s "${URL}/metrics" | grep "^percore_upstream_errors_total{upstream=\"checked\",server=\"http://127.0.0.1:${PB}\"" | awk '{ s += $2 } END { print s + 0 }')
labels /c/x 20 >"${D}/l1"
expect_eq "20 requests on new connections (both workers) all reach A" \
    "$(sort -u "${D}/l1" | paste -sd, -)" "A"
ERRS1=$(curl -s "${URL}/metrics" | grep "^percore_upstream_errors_total{upstream=\"checked\",server=\"http://127.0.0.1:${PB}\"" | awk '{ s += $2 } END { print s + 0 }')
expect_eq "and no worker tried B (its error count stays)" "${ERRS1}" "${ERRS0}"

# ---- state and counters survive a reload ----
SINCE0=$(status | grep "server http://127.0.0.1:${PB}:" || true)
REQ0=$(metric percore_upstream_requests_total "upstream=\"checked\",server=\"http://127.0.0.1:${PA}\"")
write_conf two
kill -HUP "${PC_PID}"
check "the reload is done" wait_for log_has "reload done"
serves_two() {
    [[ $(curl -s "${URL}/generation") = two ]]
}
check "the new generation serves" wait_for serves_two
SINCE1=$(status | grep "server http://127.0.0.1:${PB}:" || true)
expect_eq "B is still down, since the same time" "${SINCE1}" "${SINCE0}"
REQ1=$(metric percore_upstream_requests_total "upstream=\"checked\",server=\"http://127.0.0.1:${PA}\"")
check "A's request count goes on (${REQ0} then ${REQ1})" [ "${REQ1:-0}" -ge "${REQ0:-1}" ]

# ---- checks go on when workers die ----
OLD=$(workers | paste -sd' ' -)
for w in ${OLD}; do kill -KILL "${w}"; done
# replaced: two workers, none of them an old one.
replaced() {
    local now
    now=$(workers)
    [[ $(wc -l <<<"${now}") -eq 2 ]] && ! grep -qxF -f <(tr ' ' '\n' <<<"${OLD}") <<<"${now}"
}
check "the workers are replaced" wait_for replaced
C1=$(counted "${PA}" checks)
check "and the checks go on" wait_for checks_reach "${PA}" $((C1 + 3))

# ---- back after rise ----
start_upstream B "${PB}"
check "B is up again after 2 passed checks" wait_for status_has "${B_UP}"
check "the log says so" log_has "server 'http://127.0.0.1:${PB}' is up: 2 health checks passed in a row (status 200)"
labels /c/x 20 >"${D}/l2"
expect_eq "and requests reach both" "$(sort -u "${D}/l2" | paste -sd, -)" "A,B"

# ---- passive ejection by one worker holds for all ----
labels /p/x 20 >"${D}/l3"
expect_eq "20 requests all answered by C (F's 503s retried)" \
    "$(sort -u "${D}/l3" | paste -sd, -)" "C"
expect_eq "F got one request: the one that took it out, for both workers" \
    "$(counted "${PF}" requests)" "1"
check "F is out for 60 s (status)" status_has \
    "upstream passive server http://127.0.0.1:${PF}: down since .* until .* \\(ejected after failed requests, the last: status 503\\)"
F_LABELS="upstream=\"passive\",server=\"http://127.0.0.1:${PF}\""
expect_eq "the 503 counts as a 5xx response" \
    "$(metric percore_upstream_responses_total "${F_LABELS},class=\"5xx\"")" "1"
expect_eq "and a retry_status error" \
    "$(metric percore_upstream_errors_total "${F_LABELS},kind=\"retry_status\"")" "1"
check "the retry counts at C" \
    [ "$(metric percore_upstream_retries_total "upstream=\"passive\",server=\"http://127.0.0.1:${PC}\"")" = 1 ]
check "response times are measured (a histogram with 20 observations at C)" \
    [ "$(metric percore_upstream_response_seconds_count "upstream=\"passive\",server=\"http://127.0.0.1:${PC}\"")" = 20 ]

# ---- a full live server is waited for, not passed over for a down one ----
check "the server nothing listens on is down" wait_for status_has \
    "upstream mixed server http://127.0.0.1:${PDEAD}: down since"
for i in 1 2 3; do
    curl -s -o /dev/null -w '%{http_code}\n' "${URL}/m/slow" >"${D}/m${i}" &
    MPIDS+=("$!")
done
wait "${MPIDS[@]}"
expect_eq "3 slow requests at once to a group whose live server takes 1: all wait for it" \
    "$(cat "${D}"/m1 "${D}"/m2 "${D}"/m3 | paste -sd' ' -)" "200 200 200"

stop_percore

# ---- config errors ----
# conf_error LINE: the check's error for an upstream block with LINE in it.
conf_error() {
    printf 'upstream u {\n    server http://127.0.0.1:%s;\n    %s\n}\nservice s { listen 127.0.0.1:%s; route / { proxy http://u/; } }\n' \
        "${PA}" "$1" "${PORT}" >"${D}/bad.conf"
    "${PERCORE}" -t -c "${D}/bad.conf" 2>&1
}
# refused LINE PATTERN: the error for LINE matches PATTERN.
refused() {
    conf_error "$1" | grep -q "$2"
}
check "a path without '/' is refused, with its position" \
    refused "health_check healthz;" "bad.conf:3:18: invalid health_check path 'healthz'"
check "an unknown option is named" \
    refused "health_check /h every=1s;" "bad.conf:3:21: unknown health_check option 'every=1s'"
check "a bad status range is refused" \
    refused "health_check /h status=500-200;" "bad.conf:3:21: invalid health_check status=500-200"
check "a server listed twice in a group is refused" \
    refused "server http://127.0.0.1:${PA};" "bad.conf:3:12: server 'http://127.0.0.1:${PA}' is in upstream 'u' already (line 2)"
printf 'upstream proxy { server http://127.0.0.1:1; }\n' >"${D}/proxy.conf"
"${PERCORE}" -t -c "${D}/proxy.conf" >"${D}/proxy.out" 2>&1
check "the group name 'proxy' is kept for proxy lines' servers" \
    grep -q "proxy.conf:1:10: the upstream name 'proxy' is taken" "${D}/proxy.out"
check "a bad time is refused" \
    refused "health_check /h interval=soon;" "bad.conf:3:21: invalid health_check interval=soon"

finish
