#!/bin/bash
# Upstream host names followed while percore runs: in a private mount namespace whose
# /etc/hosts (files only: no DNS query leaves the machine) the test edits in place, a name
# moved from upstream A (127.0.0.1) to B (127.0.0.2, same port) is followed within seconds
# with no reload, in both workers, for an upstream block and a proxy line alike, and by
# its health checks; kept-alive connections to A are used no more; a name that stops
# resolving keeps its last address (said once in the log) and resolves again later;
# resolve=off keeps the address from load.
if [[ -z "${PERCORE_IN_NS:-}" ]]; then
    if [[ "${EUID}" -ne 0 ]] || ! command -v unshare >/dev/null ||
        ! unshare -m --propagation private true 2>/dev/null; then
        echo "1..0 # SKIP needs root and unshare for a private mount namespace"
        exit 0
    fi
    export PERCORE_IN_NS=1
    exec unshare -m --propagation private bash "$0" "$@"
fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO="$(dirname "$0")/echo_upstream.py"
D=${T_DIR}
UP_PIDS=()
cleanup() {
    stop_percore
    for p in "${UP_PIDS[@]}"; do kill "${p}" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT

# hosts LINE...: /etc/hosts as these lines, written in place (the bind mount holds the
# file, not its name). A lookup may see it empty for a moment: a failure then is no
# failure of this test, so log lines are counted from MARK, the log's length when it was
# last written.
hosts() {
    MARK=0
    [[ ! -f "${PC_LOG}" ]] || MARK=$(wc -l <"${PC_LOG}")
    printf '%s\n' "127.0.0.1 localhost" "$@" >"${D}/hosts"
}

# since_mark TEXT: how many lines since MARK hold TEXT.
since_mark() {
    awk -v m="${MARK}" -v s="$1" 'NR > m && index($0, s) { n++ } END { print n + 0 }' \
        "${PC_LOG}"
}

# since_mark_at_least TEXT N
since_mark_at_least() {
    local n
    n=$(since_mark "$1")
    [[ "${n}" -ge "$2" ]]
}
hosts "127.0.0.1 app.test" "127.0.0.1 pinned.test"
printf 'hosts: files\n' >"${D}/nsswitch.conf"
printf 'nameserver 127.0.0.1\n' >"${D}/resolv.conf"
for f in hosts nsswitch.conf resolv.conf; do
    mount --bind "${D}/${f}" "/etc/${f}" || bail "cannot bind-mount /etc/${f}"
done

# start_upstream LABEL ADDR PORT: an echo upstream answering before this returns.
start_upstream() {
    ECHO_ADDR=$2 python3 "${ECHO}" "$3" "$1" &
    UP_PIDS+=("$!")
    wait_for curl -sf -o /dev/null "http://$2:$3/count" || bail "upstream $1 did not start"
}

# field JSON NAME: the value of a flat JSON object's field (no python: its start alone
# takes a second on a loaded machine), or "-".
field() {
    local v=${1#*\""$2"\": }
    [[ "${v}" != "$1" ]] || v="-"
    v=${v#\"}
    echo "${v%%[\",\}]*}"
}

# count ADDR [FIELD]: requests (or FIELD: checks) the upstream at ADDR has answered.
count() {
    local body
    body=$(curl -s "http://$1:${PU}/count") || body=
    field "${body}" "${2:-requests}"
}

# checks_at_least ADDR N: whether the upstream at ADDR has answered N health checks.
checks_at_least() {
    local n
    n=$(count "$1" checks)
    [[ "${n}" -ge "$2" ]] 2>/dev/null
}

# labels PATH N: the upstream label of each of N answers ("-" for none), on one line.
labels() {
    local body
    for ((i = 0; i < $2; i++)); do
        body=$(curl -s -m 10 "${URL}$1") || body=
        printf '%s ' "$(field "${body}" upstream || true)"
    done
}

# reaches PATH LABEL: whether a request to PATH is answered by upstream LABEL.
reaches() {
    local got
    got=$(labels "$1" 1)
    [[ "${got}" = "$2 " ]]
}

# expect_labels NAME PATH N WANT: the labels of N answers to PATH are WANT.
expect_labels() {
    local got
    got=$(labels "$2" "$3")
    expect_eq "$1" "${got}" "$4"
}

PU=$(free_port) # A and B both listen on it, at their own address
PORT=$(free_port)
URL="http://127.0.0.1:${PORT}"
start_upstream A 127.0.0.1 "${PU}"
start_upstream B 127.0.0.2 "${PU}"

cat >"${D}/p.conf" <<EOF
workers 2;
upstream app {
    server http://app.test:${PU} resolve=2s;
    keepalive 60s;
    health_check /health interval=1s;
}
upstream pinned {
    server http://pinned.test:${PU} resolve=off;
}
service www {
    listen 127.0.0.1:${PORT};
    route /block/ { proxy http://app/; }
    route /line/ { proxy http://app.test:${PU}/; }
    route /pinned/ { proxy http://pinned/; }
}
EOF
start_percore "${D}/p.conf" -v

expect_labels "before the move: the block's server is A" /block/ 6 "A A A A A A "
expect_labels "before the move: the proxy line's server is A" /line/ 2 "A A "
# Connections to A now wait in both workers' pools (keepalive 60s).
BEFORE_A=$(count 127.0.0.1)

hosts "127.0.0.2 app.test" "127.0.0.2 pinned.test"
MOVED=$(date +%s%N)
check "the master sees the move" wait_for log_has "upstream host 'app.test' now resolves to 127.0.0.2:${PU}"
check "a request reaches B with no reload" wait_for reaches /block/ B
ELAPSED_MS=$((($(date +%s%N) - MOVED) / 1000000))
check "followed within seconds (${ELAPSED_MS} ms; resolve=2s)" test "${ELAPSED_MS}" -lt 10000
expect_labels "every later request goes to B: no kept connection to A is used" \
    /block/ 8 "B B B B B B B B "
check "the proxy line's server follows too" wait_for reaches /line/ B
AFTER_A=$(count 127.0.0.1)
expect_eq "A got nothing after the move" "${AFTER_A}" "${BEFORE_A}"
expect_labels "resolve=off keeps the address from load" /pinned/ 2 "A A "
check "health checks go to B" wait_for checks_at_least 127.0.0.2 1
CHECKS_A=$(count 127.0.0.1 checks)
CHECKS_B=$(count 127.0.0.2 checks)
check "and go on there" wait_for checks_at_least 127.0.0.2 $((CHECKS_B + 2))
AFTER_CHECKS_A=$(count 127.0.0.1 checks)
expect_eq "none goes to A any more" "${AFTER_CHECKS_A}" "${CHECKS_A}"
check "no reload happened" sh -c "! grep -q reloading '${PC_LOG}'"

# The name goes away: the last address stays, and the log says so once.
hosts
check "a failed lookup is logged" \
    wait_for since_mark_at_least "cannot resolve upstream host 'app.test'" 1
check "lookups go on failing" \
    wait_for since_mark_at_least "upstream host 'app.test' still does not resolve" 2
FAILURES=$(since_mark "cannot resolve upstream host 'app.test'")
expect_eq "the failure is logged once" "${FAILURES}" "1"
expect_labels "still served by its last address" /block/ 4 "B B B B "

# It comes back, at A's address.
hosts "127.0.0.1 app.test"
check "the name resolves again" \
    wait_for since_mark_at_least "upstream host 'app.test' resolves again" 1
check "requests reach A again" wait_for reaches /block/ A
expect_labels "and stay there" /block/ 4 "A A A A "

ENDS=$(worker_ends)
expect_eq "no worker died" "${ENDS}" "0"
finish
