#!/bin/bash
# The client's real address: `listen ... proxy_protocol` takes a PROXY header (v1 or v2,
# also before TLS) from trusted_proxies only, and refuses a missing, malformed, oversized
# or late one; behind trusted proxies X-Forwarded-For names the client, and only there.
# What a user checks: $remote_addr in a response header, the access log, the error log.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_tls
command -v curl >/dev/null || skip_all "curl not installed"

PP=$(free_port)
PPTLS=$(free_port)
STRICT=$(free_port)
PLAIN=$(free_port)
OPEN=$(free_port)
D=${T_DIR}
CONF=${D}/percore.conf
PPLOG=${D}/pp.log
PLOG=${D}/plain.log
PPCLIENT=${TOP_SRCDIR}/tests/integration/ppclient.py
cat >"${CONF}" <<CONF
workers 2;
trusted_proxies 127.0.0.1 10.0.0.0/8 2001:db8:f::/48;
service pp {
    listen 127.0.0.1:${PP} proxy_protocol;
    handshake_timeout 1s;
    access_log ${PPLOG};
    route / { respond 200 "pp\n"; header X-Client "\$remote_addr \$remote_port"; }
}
service pptls {
    listen 127.0.0.1:${PPTLS} tls http2 proxy_protocol;
    ${TLS_FILES}
    route / { respond 200 "tls\n"; header X-Client "\$remote_addr"; }
}
service strict {
    listen 127.0.0.1:${STRICT} proxy_protocol;
    trusted_proxies 10.0.0.0/8;
    route / { respond 200 "strict\n"; }
}
service plain {
    listen 127.0.0.1:${PLAIN};
    access_log ${PLOG};
    route / { respond 200 "plain\n"; header X-Client "\$remote_addr"; }
}
service open {
    listen 127.0.0.1:${OPEN};
    trusted_proxies off;
    route / { respond 200 "open\n"; header X-Client "\$remote_addr"; }
}
CONF
check "the configuration is valid" "${PERCORE}" -t -c "${CONF}"
start_percore "${CONF}"

# pp PORT HEADER [OPTIONS...]: OUT, what ppclient.py printed ("STATUS X-CLIENT" or
# "CLOSED"), and OUT2, its first two words.
pp() {
    OUT=$(python3 "${PPCLIENT}" "$@" 2>&1) || OUT="ppclient.py failed: ${OUT}"
    read -r w1 w2 _ <<<"${OUT}"
    OUT2="${w1}${w2:+ ${w2}}"
}
# hex TEXT: HEX, TEXT's bytes (printf escapes) in hex, for ppclient.py's hex: header.
hex() {
    printf '%b' "$1" >"${D}/hexin"
    HEX=$(od -An -v -tx1 "${D}/hexin")
    HEX=${HEX//[[:space:]]/}
}

# ---- PROXY v1 and v2 from a trusted peer ----
pp "${PP}" v1:203.0.113.7:4242
expect_eq "v1: the header's source is the client" "${OUT}" "200 203.0.113.7 4242"
pp "${PP}" v1:2001:db8::7:4243
expect_eq "v1 over IPv6 addresses" "${OUT}" "200 2001:db8::7 4243"
pp "${PP}" v1:203.0.113.8:4244 --split
expect_eq "v1 split over many writes" "${OUT}" "200 203.0.113.8 4244"
pp "${PP}" v1-unknown
expect_eq "v1 UNKNOWN keeps the peer" "${OUT2}" "200 127.0.0.1"
pp "${PP}" v2:198.51.100.9:5555
expect_eq "v2 with TLVs" "${OUT}" "200 198.51.100.9 5555"
pp "${PP}" v2:2001:db8::99:6666 --split
expect_eq "v2 with IPv6 addresses, split" "${OUT}" "200 2001:db8::99 6666"
pp "${PP}" v2-local
expect_eq "v2 LOCAL keeps the peer" "${OUT2}" "200 127.0.0.1"
CODE=$(curl -s --haproxy-protocol -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PP}/")
expect_eq "curl --haproxy-protocol is served" "${CODE}" "200"

lines_at_least() {
    n=$(wc -l <"$1" 2>/dev/null) || n=0
    [[ ${n} -ge $2 ]]
}
wait_for lines_at_least "${PPLOG}" 8
check "the access log has the PROXY source" grep -q '^203\.0\.113\.7 - - \[' "${PPLOG}"
check "the access log has a v2 IPv6 source" grep -q '^2001:db8::99 - - \[' "${PPLOG}"

# ---- through a trusted proxy, X-Forwarded-For counts; the PROXY source is the peer ----
pp "${PP}" v1:10.5.5.5:1000 --xff '192.0.2.200, 198.51.100.20, 10.9.9.9'
expect_eq "a trusted PROXY source's X-Forwarded-For names the client" "${OUT2}" \
    "200 198.51.100.20"
pp "${PP}" v1:203.0.113.7:1000 --xff '198.51.100.20'
expect_eq "an untrusted PROXY source's X-Forwarded-For is ignored" "${OUT2}" "200 203.0.113.7"

# ---- TLS after the header ----
pp "${PPTLS}" v2:203.0.113.50:7777 --tls
expect_eq "TLS after a v2 header" "${OUT}" "200 203.0.113.50"
pp "${PPTLS}" v1:203.0.113.51:7778 --tls --split
expect_eq "TLS after a v1 header, split" "${OUT}" "200 203.0.113.51"
H2=$(curl -sk --http2 --haproxy-protocol -o /dev/null -w '%{http_version} %{http_code}' \
    --resolve "localhost:${PPTLS}:127.0.0.1" "https://localhost:${PPTLS}/")
expect_eq "curl --haproxy-protocol with TLS and HTTP/2" "${H2}" "2 200"

# ---- refused: untrusted peers, missing, malformed, oversized and late headers ----
# refused NAME LOG-TEXT PORT HEADER [OPTIONS...]: the connection is closed without an
# answer, and the log says why, naming the peer.
refused() {
    name=$1 text=$2
    shift 2
    before=$(grep -c -- "${text}" "${PC_LOG}")
    pp "$@"
    expect_eq "${name}: closed" "${OUT}" "CLOSED"
    check "${name}: the log names the peer and why" wait_for log_count_at_least \
        "closing connection from 127\.0\.0\.[12]:[0-9]*: .*${text}" "$((before + 1))"
}
refused "no header" "no PROXY header" "${PP}" none
hex 'PROXY TCP4 1.2.3.4'
refused "truncated v1" "connection closed inside the PROXY header" "${PP}" "hex:${HEX}" --eof
hex 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n'
refused "v1 port out of range" "malformed address or port" "${PP}" "hex:${HEX}"
hex 'PROXY TCP4 ::1 5.6.7.8 1 80\r\n'
refused "v1 address of the wrong family" "malformed address or port" "${PP}" "hex:${HEX}"
hex "PROXY UNKNOWN $(printf '%0100d' 0)\r\n"
refused "v1 line too long" "longer than 107 bytes" "${PP}" "hex:${HEX}" --hold
refused "v2 wrong signature" "bad v2 signature" "${PP}" hex:0d0a0d0a000d0a515549540b2011000c
refused "v2 oversized, refused before the rest comes" "longer than 4096 bytes" "${PP}" \
    hex:0d0a0d0a000d0a515549540a2111ffff --hold
refused "v2 malformed TLV" "malformed TLV" "${PP}" \
    hex:0d0a0d0a000d0a515549540a211100110a0000010a000002000100020100056832
refused "a peer not in the service's trusted_proxies" "not in trusted_proxies" \
    "${STRICT}" v1:203.0.113.7:1
refused "a peer outside trusted_proxies, from another address" "not in trusted_proxies" \
    "${PP}" v1:203.0.113.7:1 --bind 127.0.0.2
hex 'PROXY TCP4 '
T0=$(date +%s%N)
refused "a header that never ends, cut at handshake_timeout" "within handshake_timeout" \
    "${PP}" "hex:${HEX}" --hold
ELAPSED=$((($(date +%s%N) - T0) / 1000000))
in_range() { [[ $1 -ge $2 && $1 -lt $3 ]]; }
check "the late header waited about handshake_timeout (${ELAPSED} ms)" \
    in_range "${ELAPSED}" 900 15000
# A balancer's TCP health check: connect and close, no line (the requests after it are
# served after the workers saw the closes, mostly).
before=$(grep -c 'closing connection' "${PC_LOG}")
for _ in 1 2 3 4; do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', ${PP})).close()"
done
for _ in 1 2 3 4; do pp "${PP}" v1:203.0.113.9:9; done
expect_eq "still serving after all that" "${OUT2}" "200 203.0.113.9"
expect_eq "a TCP health check (connect, close) logs nothing" \
    "$(grep -c 'closing connection' "${PC_LOG}" || true)" "${before}"

# ---- X-Forwarded-For without PROXY ----
# xclient CURL-ARGS...: XC, the response's X-Client.
xclient() {
    curl -s -D "${D}/h" -o /dev/null "$@"
    XC=$(sed -n 's/^x-client: \([^\r]*\)\r*$/\1/Ip' "${D}/h")
}
xclient -H 'X-Forwarded-For: 1.1.1.1, 198.51.100.7, 10.1.2.3' "http://127.0.0.1:${PLAIN}/"
expect_eq "from a trusted peer, the first untrusted hop from the right" "${XC}" "198.51.100.7"
xclient -H 'X-Forwarded-For: 198.51.100.8' -H 'X-Forwarded-For: 10.0.0.9' \
    "http://127.0.0.1:${PLAIN}/"
expect_eq "two X-Forwarded-For lines are one list" "${XC}" "198.51.100.8"
xclient -H 'X-Forwarded-For: 198.51.100.7, unknown, 10.1.2.3' "http://127.0.0.1:${PLAIN}/"
expect_eq "a garbage hop stops at the last trusted one" "${XC}" "10.1.2.3"
xclient --interface 127.0.0.2 -H 'X-Forwarded-For: 198.51.100.7' "http://127.0.0.1:${PLAIN}/"
expect_eq "from an untrusted peer X-Forwarded-For is ignored" "${XC}" "127.0.0.2"
xclient -H 'X-Forwarded-For: 198.51.100.7' "http://127.0.0.1:${OPEN}/"
expect_eq "a service with trusted_proxies off ignores it" "${XC}" "127.0.0.1"
curl -s -o /dev/null -H 'X-Forwarded-For: 198.51.100.77' "http://127.0.0.1:${PLAIN}/logged"
wait_for grep -q '/logged' "${PLOG}"
check "the access log has the forwarded client" grep -q '^198\.51\.100\.77 - - .*/logged' \
    "${PLOG}"
stop_percore

# ---- configuration errors, at their place ----
cat >"${D}/bad.conf" <<CONF
service a {
    listen 127.0.0.1:${PP} proxy_protocol;
    route / { respond 200; }
}
service b {
    listen 127.0.0.1:${PLAIN};
    trusted_proxies 10.0.0.1/8 localhost;
    route / { respond 200; }
}
CONF
"${PERCORE}" -t -c "${D}/bad.conf" >"${D}/out" 2>&1
check "proxy_protocol without trusted_proxies is an error at the listen" grep -q \
    "bad.conf:2:12: listen 127.0.0.1:${PP} proxy_protocol in service 'a' needs trusted_proxies" \
    "${D}/out"
check "a network with host bits is an error with the network meant" grep -q \
    "bad.conf:7:21: trusted_proxies: '10.0.0.1/8' has bits set past its /8 prefix; did you mean 10.0.0.0/8?" \
    "${D}/out"

finish
