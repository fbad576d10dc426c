#!/bin/bash
# PROXY protocol toward upstreams: a group's `proxy_protocol v1|v2` starts each new
# connection with a header naming the client as percore sees it (its peer, or whom a
# trusted proxy names in X-Forwarded-For or its own PROXY header) and the address the
# client came to; a kept connection carries only requests of the client its header named;
# an https:// server gets the header in clear before the TLS handshake. What a user
# checks: the addresses an upstream that reads the header reports; health checks send
# one too (with no client).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || skip_all "openssl not installed"

UPSTREAM="$(dirname "$0")/pp_upstream.py"
CLIENT="$(dirname "$0")/ppout_client.py"
D=${T_DIR}
UP_PIDS=()
cleanup() {
    stop_percore
    for p in "${UP_PIDS[@]}"; do kill "${p}" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT

listening() {
    local s
    s=$(ss -Htln "sport = :$1")
    [[ -n "${s}" ]]
}

# start_upstream LABEL PORT [CERT KEY]: a pp_upstream.py listening before this returns,
# its output in $D/LABEL.out.
start_upstream() {
    python3 "${UPSTREAM}" "$2" "$1" "${@:3}" >"${D}/$1.out" 2>&1 &
    UP_PIDS+=("$!")
    wait_for listening "$2" || bail "upstream $1 did not start"
}

# client ARGS...: OUT, the lines ppout_client.py printed (see there), and the fields of
# the first: LOCAL VER CMD SRC DST CONN.
client() {
    OUT=$(python3 "${CLIENT}" "$@" 2>&1) || OUT="ppout_client.py failed: ${OUT}"
    read -r _ LOCAL VER CMD SRC DST CONN _ <<<"${OUT}"
}

# column N: COL, the Nth field of every line of OUT, each followed by a space.
column() {
    COL=$(awk -v n="$1" '{ printf "%s ", $n }' <<<"${OUT}")
}

U1=$(free_port)
U2=$(free_port)
UT=$(free_port)
P=$(free_port)
PX=$(free_port)
PP=$(free_port)
P6=$(free_port)
UH=$(free_port)  # health checked, v1
UHT=$(free_port) # health checked, https and v2
make_cert upstream.test "${D}/up.pem" "${D}/up.key"
start_upstream one "${U1}"
start_upstream two "${U2}"
start_upstream tls "${UT}" "${D}/up.pem" "${D}/up.key"
start_upstream hv1 "${UH}"
start_upstream htls "${UHT}" "${D}/up.pem" "${D}/up.key"

cat >"${D}/p.conf" <<EOF
workers 2;
upstream v1 {
    server http://127.0.0.1:${U1};
    proxy_protocol v1;
    keepalive 60s;
}
upstream v2 {
    server http://127.0.0.1:${U2};
    proxy_protocol v2;
    keepalive 60s;
}
upstream tls {
    server https://127.0.0.1:${UT};
    tls_ca ${D}/up.pem;
    tls_name upstream.test;
    proxy_protocol v2;
    keepalive 60s;
}
upstream checked_v1 {
    server http://127.0.0.1:${UH};
    proxy_protocol v1;
    health_check /healthz interval=200ms fall=1 rise=1;
}
upstream checked_tls {
    server https://127.0.0.1:${UHT};
    tls_ca ${D}/up.pem;
    tls_name upstream.test;
    proxy_protocol v2;
    health_check /healthz interval=200ms fall=1 rise=1;
}
service front {
    listen 127.0.0.1:${P};
    listen [::1]:${P6};
    route /v1/ { proxy http://v1/; }
    route /v2/ { proxy http://v2/; }
    route /tls/ { proxy http://tls/; }
    route /line/ { proxy http://127.0.0.1:${U1}/ proxy_protocol=v1; }
}
service behind_xff {
    listen 127.0.0.1:${PX};
    trusted_proxies 127.0.0.3;
    route / { proxy http://v2/; }
}
service behind_pp {
    listen 127.0.0.1:${PP} proxy_protocol;
    trusted_proxies 127.0.0.1;
    route / { proxy http://v1/; }
}
EOF
"${PERCORE}" -t -c "${D}/p.conf" >"${D}/t.out" 2>&1 || bail "config refused"
start_percore "${D}/p.conf"

# ---- the header's addresses ----
client 127.0.0.1 "${P}" /v1/x
expect_eq "v1: the client's address and port, and the address it came to" \
    "${VER} ${CMD} ${SRC} ${DST}" "1 PROXY ${LOCAL} 127.0.0.1:${P}"
client 127.0.0.1 "${P}" /v2/x --bind 127.0.0.2
expect_eq "v2: the same, from another address" \
    "${VER} ${CMD} ${SRC} ${DST}" "2 PROXY ${LOCAL} 127.0.0.1:${P}"
check "the client's port is its own (${LOCAL})" [ "${LOCAL#127.0.0.2:}" -gt 0 ]
client 127.0.0.1 "${P}" /line/x
expect_eq "proxy_protocol= on a proxy line, for its own servers" \
    "${VER} ${CMD} ${SRC} ${DST}" "1 PROXY ${LOCAL} 127.0.0.1:${P}"
client ::1 "${P6}" /v1/x --bind ::1
expect_eq "v1 over IPv6 (TCP6)" "${VER} ${SRC} ${DST}" "1 ${LOCAL} [::1]:${P6}"
client ::1 "${P6}" /v2/x --bind ::1
expect_eq "v2 over IPv6" "${VER} ${SRC} ${DST}" "2 ${LOCAL} [::1]:${P6}"

# ---- the client percore believes ----
client 127.0.0.1 "${PX}" /x --bind 127.0.0.3 --xff "198.51.100.20, 203.0.113.9"
expect_eq "behind a trusted proxy: the client X-Forwarded-For names (port 0)" \
    "${SRC} ${DST}" "203.0.113.9:0 127.0.0.1:${PX}"
client 127.0.0.1 "${PX}" /x --bind 127.0.0.4 --xff 203.0.113.9
expect_eq "from an untrusted peer X-Forwarded-For is not believed" "${SRC}" "${LOCAL}"
client 127.0.0.1 "${PP}" /x --pp 198.51.100.7:5555
expect_eq "behind a trusted PROXY sender: the client its header names" \
    "${SRC} ${DST}" "198.51.100.7:5555 127.0.0.1:${PP}"

# ---- one client per upstream connection ----
# Two clients, from two addresses, in turn on one connection each: each client's requests
# share an upstream connection (kept alive), and the two never share one.
client 127.0.0.1 "${P}" /v2/x --bind 127.0.0.1 --bind 127.0.0.2 -n 4
A=$(awk '$1 == 0 && !seen[$7]++ { printf "%s ", $7 }' <<<"${OUT}")
B=$(awk '$1 == 1 && !seen[$7]++ { printf "%s ", $7 }' <<<"${OUT}")
WRONG=$(awk '$2 != $5 { print "wrong:", $0 }' <<<"${OUT}")
column 8
check "client A's 4 requests on one kept upstream connection (${A})" [ "${A% }" -gt 0 ]
check "client B's 4 on one too (${B})" [ "${B% }" -gt 0 ]
check "and not the same one" [ "${A}" != "${B}" ]
expect_eq "each answer names its own client" "${WRONG}" ""
expect_eq "requests counted on their connections" "${COL}" "1 1 2 2 3 3 4 4 "
# The same address from another port is another client's connection.
client 127.0.0.1 "${P}" /v2/x
differs() { [[ "$1" != "$2" && "$1" != "$3" ]]; }
check "a new client connection from the same address gets a new upstream one (${CONN})" \
    differs "${CONN} " "${A}" "${B}"
# Under load: 200 requests of 20 clients at once; each answer names its own client, and
# each upstream connection's requests came from one client.
LOAD=()
for i in $(seq 1 20); do
    python3 "${CLIENT}" 127.0.0.1 "${P}" /v2/x --bind "127.0.1.${i}" -n 10 >"${D}/load.${i}" 2>&1 &
    LOAD+=("$!")
done
wait "${LOAD[@]}"
GOT=$(awk '$2 != $5 || $2 == "ERROR" { bad++ } END { print NR, bad + 0 }' "${D}"/load.*)
expect_eq "20 clients at once, 10 requests each: none answered for another" "${GOT}" "200 0"
SHARED=$(awk '($7 in by) && by[$7] != $2 { n++ } { by[$7] = $2 } END { print n + 0 }' \
    "${D}"/load.*)
expect_eq "no upstream connection carried two clients" "${SHARED}" "0"

# ---- health checks ----
# checked LABEL WANT: the upstream LABEL got 2 checks or more, each with the header WANT.
checked() {
    local n
    n=$(grep -c "^conn [0-9]*: " "${D}/$1.out" || true)
    [[ "${n}" -ge 2 ]] && ! grep "^conn [0-9]*: " "${D}/$1.out" | grep -vqF "$2"
}
check "health checks start with a PROXY header: v1 UNKNOWN (no client)" \
    wait_for checked hv1 '{"version": 1, "command": "UNKNOWN", "src": "-", "dst": "-"}'
check "v2 LOCAL, before the TLS handshake" \
    wait_for checked htls '{"version": 2, "command": "LOCAL", "src": "-", "dst": "-"}'
"${PERCORE}" -c "${D}/p.conf" -s status >"${D}/status" 2>&1
check "and both servers are up" \
    [ "$(grep -c "upstream checked_[a-z0-9]* server .*: up since" "${D}/status")" -eq 2 ]

# ---- https:// upstream ----
client 127.0.0.1 "${P}" /tls/x -n 3
column 8
expect_eq "https:// server: the header before the handshake, then 3 requests on one connection" \
    "${VER} ${SRC} ${COL}" "2 ${LOCAL} 1 2 3 "
BAD=$(awk '/^bad:/ { n++ } END { print n + 0 }' "${D}"/*.out)
expect_eq "no connection without a header" "${BAD}" "0"
stop_percore

# ---- config errors ----
# bad_conf NAME BODY WANT: percore -t refuses BODY (a whole config) with WANT in its message.
bad_conf() {
    printf '%s\n' "$2" >"${D}/bad.conf"
    "${PERCORE}" -t -c "${D}/bad.conf" >"${D}/bad.out" 2>&1
    local rc=$?
    check "$1 (exit ${rc})" sh -c "[ ${rc} -ne 0 ] && grep -q -- \"\$1\" '${D}/bad.out'" _ "$3"
}
SVC="service s { listen 127.0.0.1:${P}; route / { proxy http://g/; } }"
bad_conf "an unknown version" "upstream g { server http://127.0.0.1:1; proxy_protocol v3; } ${SVC}" \
    "bad.conf:1:56: invalid value 'v3' for 'proxy_protocol': expected 'v1', 'v2' or 'off'"
bad_conf "not in a service" \
    "service s { listen 127.0.0.1:${P}; proxy_protocol v1; route / { respond 200; } }" \
    "'proxy_protocol' is not allowed in a service block"
bad_conf "proxy_protocol= on a line naming a group" \
    "upstream g { server http://127.0.0.1:1; } service s { listen 127.0.0.1:${P}; route / { proxy http://g/ proxy_protocol=v2; } }" \
    "set 'proxy_protocol' in upstream 'g'"
finish
