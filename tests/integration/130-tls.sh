#!/bin/bash
# TLS: per-service certificate, TLS 1.2 and 1.3, ALPN http/1.1 by default, sessions resumed on
# whichever worker a connection lands (keys made once in the master), never across
# services, and bad key or certificate files as config errors with the path and reason.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || skip_all "openssl not installed"
D=$T_DIR
make_cert localhost "$D/cert.pem" "$D/key.pem"
make_cert other "$D/cert2.pem" "$D/key2.pem"
PORT=$(free_port)
PORT2=$(free_port)
PLAIN=$(free_port)
CONF=$D/percore.conf
cat >"$CONF" <<CONF
workers 2;
service a {
    listen 127.0.0.1:$PORT tls;
    listen 127.0.0.1:$PLAIN;
    tls_certificate $D/cert.pem;
    tls_key $D/key.pem;
    route / { respond 200 "a\n"; }
}
service b {
    listen 127.0.0.1:$PORT2 tls;
    tls_certificate $D/cert.pem;
    tls_key $D/key.pem;
    route / { respond 200 "b\n"; }
}
CONF
start_percore "$CONF"
U=https://127.0.0.1:$PORT

expect_eq "HTTPS answers" "$(curl -sk "$U/")" "a"
expect_eq "the same service over plain HTTP" "$(curl -s "http://127.0.0.1:$PLAIN/")" "a"
expect_eq "TLS 1.3" "$(curl -sk --tlsv1.3 -o /dev/null -w '%{http_code}' "$U/")" "200"
expect_eq "TLS 1.2" "$(curl -sk --tlsv1.2 --tls-max 1.2 -o /dev/null -w '%{http_code}' "$U/")" "200"
expect_eq "TLS 1.1 is refused" "$(curl -sk --tlsv1.1 --tls-max 1.1 -o /dev/null -w '%{http_code}' "$U/")" "000"
expect_eq "ALPN offers no h2 unless the listen asks for it" \
    "$(curl -sk --http2 -o /dev/null -w '%{http_version}' "$U/")" "1.1"
expect_eq "the certificate is the configured one" \
    "$(openssl s_client -connect "127.0.0.1:$PORT" </dev/null 2>/dev/null | openssl x509 -noout -subject 2>/dev/null | sed 's/ //g')" \
    "subject=CN=localhost"

# Resumption: new connections land on either worker (reuseport hashes the source port).
for v in tls1_2 tls1_3; do
    tls_session "$D/sess.$v" "$PORT" -$v
    R=0
    for _ in $(seq 1 10); do
        R=$((R + $(resumed "$D/sess.$v" "$PORT" -$v)))
    done
    expect_eq "$v session resumed on whichever worker: $R/10" "$R" "10"
    expect_eq "$v: a session of service a does not resume on service b" \
        "$(resumed "$D/sess.$v" "$PORT2" -$v)" "0"
done
# Ticket keys live in the master, beyond a generation: a reload keeps sessions.
"$PERCORE" -s reload -c "$CONF" >/dev/null 2>&1
for v in tls1_2 tls1_3; do
    expect_eq "$v: a session from before a reload resumes after it" \
        "$(resumed "$D/sess.$v" "$PORT" -$v)" "1"
done
stop_percore

# Rotation: a new ticket key every 2 s; a ticket survives one rotation (and is renewed)
# but not three. Time is the event here: sleep until each point, measured from the
# ticket's issue, so a slow machine does not skip a rotation.
sed -i '1s/^/tls_ticket_rotation 2s;\n/' "$CONF"
start_percore "$CONF"
until_ms() { # T0_NS MS: sleep until MS after T0_NS
    left=$(( $2 - ($(date +%s%N) - $1) / 1000000 ))
    [ "$left" -gt 0 ] && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
    return 0
}
T0=$(date +%s%N)
for v in tls1_2 tls1_3; do
    tls_session "$D/rot.$v" "$PORT" -$v
done
until_ms "$T0" 2300
for v in tls1_2 tls1_3; do
    expect_eq "$v: a ticket one rotation old still resumes" "$(resumed "$D/rot.$v" "$PORT" -$v)" "1"
done
until_ms "$T0" 8500
for v in tls1_2 tls1_3; do
    expect_eq "$v: a ticket whose key was rotated out does not" "$(resumed "$D/rot.$v" "$PORT" -$v)" "0"
done
stop_percore

# Bad files are config errors naming the file and OpenSSL's reason.
sed -i "s|tls_key $D/key.pem;|tls_key $D/key2.pem;|" "$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
expect_eq "mismatched key: -t fails" "$?" "1"
check "mismatched key: names the key file and the reason" \
    grep -q "service 'a': $D/key2.pem: .*key values mismatch" "$D/out"
printf 'not a key\n' >"$D/bad.pem"
sed -i "s|tls_key $D/key2.pem;|tls_key $D/bad.pem;|" "$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "unreadable key: names the key file" grep -q "service 'a': $D/bad.pem: " "$D/out"
# The first error OpenSSL queued is the cause; the last one only says where it surfaced.
check "unreadable key: OpenSSL's reason is the cause, not 'PEM lib'" \
    sh -c "grep -q \"service 'a': $D/bad.pem: error:[0-9A-F]*:[A-Za-z0-9 ]* routines:\" '$D/out' &&
        ! grep -q 'PEM lib' '$D/out'"
sed -i "s|tls_certificate $D/cert.pem;|tls_certificate $D/bad.pem;|; s|tls_key $D/bad.pem;|tls_key $D/key.pem;|" \
    "$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "a certificate file that is not PEM: names the file and OpenSSL's reason" \
    grep -q "service 'a': $D/bad.pem: error:[0-9A-F]*:PEM routines:.*no start line" "$D/out"
sed -i "s|tls_certificate $D/bad.pem;|tls_certificate $D/cert.pem;|" "$CONF"
sed -i "s|tls_certificate $D/cert.pem;|tls_certificate $D/missing.pem;|" "$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "missing certificate: names the file" grep -q "service 'a': $D/missing.pem: .*No such file" "$D/out"
printf 'service c {\n    listen 127.0.0.1:%s tls;\n    route / { respond 200; }\n}\n' "$PORT" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "tls listen without files" grep -q "$CONF:1:1: service 'c' listens with tls but lacks 'tls_certificate'" "$D/out"
finish
