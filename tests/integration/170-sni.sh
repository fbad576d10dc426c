#!/bin/bash
# Several TLS services on one address, picked by SNI: each with its own certificate,
# ALPN and sessions; exact names before wildcards, the first service as the default; and
# sharing mistakes as config errors.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || skip_all "openssl not installed"
D=$T_DIR
for n in a.test b.test '*.w.test'; do
    f=$(echo "$n" | tr -d '*')
    make_cert "$n" "$D/cert$f.pem" "$D/key$f.pem"
done
PORT=$(free_port)
CONF=$D/percore.conf
site() { # NAME LISTEN-FLAGS CERT SERVER_NAMES
    cat <<CONF
service $1 {
    listen 127.0.0.1:$PORT $2;
    server_name $4;
    tls_certificate $D/cert$3.pem;
    tls_key $D/key$3.pem;
    route / { respond 200 "$1\n"; }
}
CONF
}
{
    echo "workers 2;"
    site a tls a.test a.test
    site b "tls http2" b.test "b.test www.b.test"
    site w tls .w.test "*.w.test"
    site x tls a.test "x.w.test"
} >"$CONF"
start_percore "$CONF"

get() { # NAME [CURL ARGS]: body from https://NAME:PORT/ with SNI NAME
    n=$1
    shift
    curl -sk --resolve "$n:$PORT:127.0.0.1" "$@" "https://$n:$PORT/"
}
subject() {
    openssl s_client -connect "127.0.0.1:$PORT" ${1:+-servername "$1"} </dev/null 2>/dev/null |
        openssl x509 -noout -subject 2>/dev/null | sed 's/ //g'
}

expect_eq "SNI a.test reaches service a" "$(get a.test)" "a"
expect_eq "SNI b.test reaches service b" "$(get b.test)" "b"
expect_eq "a second name of service b" "$(get www.B.test)" "b"
expect_eq "a wildcard name" "$(get deep.y.w.test)" "w"
expect_eq "an exact name beats a wildcard" "$(get x.w.test)" "x"
expect_eq "an unknown name gets the first service" "$(get nobody.test)" "a"
expect_eq "no SNI gets the first service" "$(curl -sk "https://127.0.0.1:$PORT/")" "a"
expect_eq "service b's certificate for b.test" "$(subject b.test)" "subject=CN=b.test"
expect_eq "the wildcard certificate for y.w.test" "$(subject y.w.test)" "subject=CN=*.w.test"
expect_eq "the default certificate without SNI" "$(subject)" "subject=CN=a.test"
expect_eq "HTTP/2 where service b asks for it" "$(get b.test --http2 -o /dev/null -w '%{http_version}')" "2"
expect_eq "HTTP/1.1 on service a, same address" "$(get a.test --http2 -o /dev/null -w '%{http_version}')" "1.1"

# A request for another service's name on this connection (HTTP/2 clients reuse a
# connection for every name its certificate covers) is sent to make its own: 421.
code() { get "$@" -o /dev/null -w '%{http_code}'; }
expect_eq "Host of another service than SNI chose: 421" "$(code a.test -H "Host: b.test:$PORT")" "421"
expect_eq "the same over HTTP/2" "$(code a.test --http2 -H "Host: b.test")" "421"
expect_eq "and with a trailing dot (Host b.test.)" "$(code a.test -H "Host: b.test.")" "421"
expect_eq "Host matching SNI: 200" "$(code b.test -H "Host: www.b.test")" "200"
expect_eq "an unknown Host on the default service's connection: 200" \
    "$(code a.test -H "Host: nobody.test")" "200"
expect_eq "an unknown Host on another service's connection: 421" \
    "$(code b.test -H "Host: nobody.test")" "421"

for v in tls1_2 tls1_3; do
    tls_session "$D/sess.$v" "$PORT" -$v -servername a.test
    R=0
    for _ in $(seq 1 6); do
        R=$((R + $(resumed "$D/sess.$v" "$PORT" -$v -servername a.test)))
    done
    expect_eq "$v: a session of a.test resumes on either worker ($R/6)" "$R" "6"
    expect_eq "$v: and never for b.test on the same address" \
        "$(resumed "$D/sess.$v" "$PORT" -$v -servername b.test)" "0"
    tls_session "$D/sessb.$v" "$PORT" -$v -servername b.test
    expect_eq "$v: a session of b.test, not the default, resumes too" \
        "$(resumed "$D/sessb.$v" "$PORT" -$v -servername b.test)" "1"
done

# A reload can add a service to the shared address.
site c tls b.test c.test >>"$CONF"
"$PERCORE" -s reload -c "$CONF" >/dev/null 2>&1
expect_eq "a service added by reload answers its name" "$(get c.test)" "c"
expect_eq "the others still answer" "$(get b.test)$(get a.test)" "ba"
stop_percore

# Sharing mistakes are config errors with their position.
{ site a tls a.test a.test; site b tls b.test b.test; } | sed '/server_name b.test/d' >"$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "a sharing service without server_name" \
    grep -q "$CONF:9:12: service 'b' shares 127.0.0.1:$PORT with service 'a' but has no 'server_name'" "$D/out"
{ site a tls a.test a.test; site b tls b.test "b.test A.test"; } >"$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "a name claimed twice on one address" \
    grep -q "$CONF:10:5: server_name 'a.test' of service 'b' is also a server_name of service 'a' on 127.0.0.1:$PORT" "$D/out"
{ site a tls a.test a.test; site b "" b.test b.test; } >"$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "a cleartext listen cannot share" \
    grep -q "$CONF:9:12: 127.0.0.1:$PORT is already used by service 'a'" "$D/out"

finish
