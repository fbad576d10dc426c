#!/bin/bash
# Routing: services sharing a plain address, picked by Host (exact, wildcard, default);
# route precedence (exact, regex in file order, longest prefix) with match_header,
# match_arg and methods (405 with Allow); variables in headers, proxy headers, redirects
# and upstream paths; rewrites (redirect, last, break, loops); error documents (problem+json,
# error_page) for percore's own errors only; positioned config errors; a reload from one
# service to two on one address without a refused connection.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO="$(dirname "$0")/echo_upstream.py"
D=${T_DIR}
UP_PIDS=()
CLIENT=
cleanup() {
    stop_percore
    [[ -n "${CLIENT}" ]] && kill "${CLIENT}" 2>/dev/null
    for p in "${UP_PIDS[@]}"; do kill "${p}" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT

# start_upstream LABEL PORT: an echo upstream, answering before this returns.
start_upstream() {
    python3 "${ECHO}" "$2" "$1" &
    UP_PIDS+=($!)
    wait_for curl -sf -o /dev/null "http://127.0.0.1:$2/" || bail "upstream $1 did not start"
}

# serve CONF WHAT: percore on CONF instead of the one running; a config -t refuses is one
# failed check (its output shown) and status 1, so that the section's checks are skipped
# and the others still run.
serve() {
    stop_percore
    if ! "${PERCORE}" -t -c "$1" >"${D}/t.out" 2>&1; then
        not_ok "$2: the config loads" "$(cat "${D}/t.out" || true)"
        return 1
    fi
    start_percore "$1"
}

# fetch CURL-ARGS...: one request; CODE, BODY (without its last newline) and HEAD (the
# response's header lines, without CR) for the checks.
fetch() {
    CODE=$(curl -s -m 10 -D "${D}/h" -o "${D}/b" -w '%{http_code}' "$@")
    BODY=$(cat "${D}/b" 2>/dev/null)
    HEAD=$(tr -d '\r' <"${D}/h" 2>/dev/null)
}

# hdr NAME...: HV, the values of the last fetch's response headers NAME..., joined by ' '
# (a header's several values by '|').
hdr() {
    HV=
    for n in "$@"; do
        HV+=${HV:+ }$(awk -v n="${n}" 'index(tolower($0), tolower(n) ": ") == 1 {
            v = v (v == "" ? "" : "|") substr($0, length(n) + 3) } END { print v }' <<<"${HEAD}")
    done
}

# up EXPR: EXPR over the last fetch's body read as the echo upstream's JSON (j).
up() {
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "${D}/b" "$1" 2>/dev/null || echo "(no upstream JSON: ${CODE} ${BODY:0:60})"
}

# uph NAME: UH, the values of request header NAME the upstream got, joined by '|'.
uph() {
    UH=$(up "'|'.join(v for k, v in j['headers'] if k.lower() == '$1')")
}

PA=$(free_port)
PB=$(free_port)
PW=$(free_port)
start_upstream A "${PA}"
start_upstream B "${PB}"
start_upstream W "${PW}"
CONF=${D}/percore.conf

# ---- services on one plain address, picked by Host ----
P=$(free_port)
P3=$(free_port)
host_conf() { # LISTEN-FLAG-OF-SERVICE-B
    cat <<CONF
workers 1;
shutdown_timeout 5s;
service a {
    listen 127.0.0.1:${P};
    listen 127.0.0.1:${P3};
    server_name a.test;
    route / { proxy http://127.0.0.1:${PA}; }
}
service b {
    listen 127.0.0.1:${P} $1;
    server_name b.test;
    route / { proxy http://127.0.0.1:${PB}; }
}
service w {
    listen 127.0.0.1:${P};
    server_name *.wild.test;
    route / { proxy http://127.0.0.1:${PW}; }
}
service catchall {
    listen 127.0.0.1:${P3} default;
    route / { redirect 301 https://\$host\$request_uri; }
}
CONF
}
# reach HOST [CURL-ARGS...]: the label of the upstream a request with that Host reached.
reach() {
    local host=$1
    shift
    fetch -H "Host: ${host}" "$@" "http://127.0.0.1:${P}/"
    R=$(up "j['upstream']")
}
host_conf "" >"${CONF}"
if serve "${CONF}" "services by Host"; then
    reach a.test
    expect_eq "Host a.test reaches service a" "${R}" "A"
    reach b.test
    expect_eq "Host b.test reaches service b" "${R}" "B"
    reach x.wild.test
    expect_eq "Host x.wild.test reaches the *.wild.test service" "${R}" "W"
    reach deep.x.wild.test
    expect_eq "and so does a name two labels below it" "${R}" "W"
    reach wild.test
    expect_eq "but not wild.test itself: the default (the first service)" "${R}" "A"
    reach B.TEST.
    expect_eq "Host B.TEST. (uppercase, trailing dot) reaches b" "${R}" "B"
    reach b.test:8080
    expect_eq "Host b.test:8080 (with a port) reaches b" "${R}" "B"
    reach unknown.test
    expect_eq "an unknown Host reaches the default, the first service" "${R}" "A"
    fetch -0 -H "Host:" "http://127.0.0.1:${P}/"
    R=$(up "j['upstream']")
    expect_eq "HTTP/1.0 without Host reaches the first service" "${R}" "A"

    # The catch-all: a default service without server_name, redirecting to https.
    fetch -H "Host: unknown.test" "http://127.0.0.1:${P3}/p?q=1"
    hdr Location
    expect_eq "a catch-all 'redirect 301 https://\$host\$request_uri'" \
        "${CODE} ${HV}" "301 https://unknown.test/p?q=1"
    fetch -H "Host: Unknown.TEST:8080" "http://127.0.0.1:${P3}/p?q=1"
    hdr Location
    expect_eq "\$host is lowercase, without the port" "${HV}" \
        "https://unknown.test/p?q=1"
    fetch -H "Host: a.test" "http://127.0.0.1:${P3}/p?q=1"
    R=$(up "j['upstream']")
    expect_eq "a named service on the catch-all's address still answers its name" "${R}" "A"
    for host in 'evil.com/x' 'a@b' 'evil.com\x' 'evil.com#x' 'evil.com?x'; do
        fetch -H "Host: ${host}" "http://127.0.0.1:${P3}/p?q=1"
        hdr Location
        LOC=${HV}
        LH=$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).netloc)' \
            "${LOC}")
        case ${CODE}:${LH} in
        400:*) ok "Host '${host}': 400, no redirect" ;;
        301:*evil* | 301:*@* | 301:b) not_ok "Host '${host}' is not the Location's host" \
            "got ${CODE} Location '${LOC}'" ;;
        301:*) ok "Host '${host}' is not the Location's host (${LOC})" ;;
        *) not_ok "Host '${host}': 400 or a 301 elsewhere" "got ${CODE} Location '${LOC}'" ;;
        esac
    done
fi

host_conf default >"${CONF}"
if serve "${CONF}" "services by Host, the second the default"; then
    reach unknown.test
    expect_eq "with 'listen ... default' on b, an unknown Host reaches b" "${R}" "B"
    fetch -0 -H "Host:" "http://127.0.0.1:${P}/"
    R=$(up "j['upstream']")
    expect_eq "and HTTP/1.0 without Host reaches b" "${R}" "B"
    reach a.test
    expect_eq "Host a.test still reaches a" "${R}" "A"
    reach A.TEST.
    expect_eq "Host A.TEST. (uppercase, trailing dot) reaches a" "${R}" "A"
    reach a.test:8080
    expect_eq "Host a.test:8080 (with a port) reaches a" "${R}" "A"
    reach x.wild.test
    expect_eq "the wildcard still reaches its service" "${R}" "W"
fi

# ---- $host and the forwarded host: only what the client sent ----
PH=$(free_port)
cat >"${CONF}" <<CONF
workers 1;
shutdown_timeout 5s;
service h {
    listen 127.0.0.1:${PH};
    server_name a.test;
    route /p/ { proxy http://127.0.0.1:${PA}; }
    route / { redirect 301 https://\$host\$request_uri; }
}
CONF
if serve "${CONF}" "hosts from the client"; then
    # A target not starting with '/' must not make the Location's host "a.test@evil.com",
    # "a.test.evil.com" or "a.test:@evil.com".
    for target in '@evil.com/' '.evil.com/' ':@evil.com/'; do
        fetch --request-target "${target}" -H "Host: a.test" "http://127.0.0.1:${PH}/"
        hdr Location
        LH=$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).netloc)' \
            "${HV}")
        expect_eq "target '${target}': the Location's host is a.test (${HV})" \
            "${CODE} ${LH}" "301 a.test"
    done
    fetch -0 -H "Host:" "http://127.0.0.1:${PH}/x"
    hdr Location
    expect_eq "HTTP/1.0 without Host: \$host is the service's server_name" \
        "${CODE} ${HV}" "301 https://a.test/x"
    fetch -0 -H "Host:" "http://127.0.0.1:${PH}/p/x"
    uph forwarded
    FWD=${UH}
    uph x-forwarded-host
    XFH=${UH}
    if [[ "${FWD}" == *for=* && "${FWD}" != *host=* && -z "${XFH}" ]]; then
        ok "proxied without Host: Forwarded has no host= (${FWD}), no X-Forwarded-Host"
    else
        not_ok "proxied without Host: Forwarded has no host=, no X-Forwarded-Host" \
            "Forwarded '${FWD}', X-Forwarded-Host '${XFH}'"
    fi
fi

# ---- route precedence and conditions ----
PR=$(free_port)
PRR=$(free_port)
cat >"${CONF}" <<CONF
workers 1;
shutdown_timeout 5s;
service r {
    listen 127.0.0.1:${PR};
    route = /exact { respond 200 "exact\n"; }
    route = /pic.png { respond 200 "exact-png\n"; }
    route ~ ^/v(\d+)/users/(\d+)\$ {
        methods GET HEAD;
        proxy http://127.0.0.1:${PA}/api/v\$1/user/\$2;
    }
    route ~* \.PNG\$ { respond 200 "png\n"; }
    route /api/ {
        match_header X-Canary 1;
        respond 200 "canary\n";
    }
    route /api/ {
        match_arg debug;
        respond 200 "debug\n";
    }
    route /api/ { respond 200 "api\n"; }
    route /api/v1/ { respond 200 "api-v1\n"; }
    route /exact/ { respond 200 "exact-prefix\n"; }
    route /get/ {
        methods GET;
        respond 200 "get\n";
    }
    route /m/ {
        methods GET;
        respond 200 "m-get\n";
    }
    route ~ ^/m/x\$ {
        methods POST;
        respond 200 "m-post\n";
    }
}
service rr {
    listen 127.0.0.1:${PRR};
    route ~ ^/v(\d+)/users/(\d+)\$ {
        methods GET HEAD;
        respond 200 "regex\n";
    }
    route ~ ^/x/((a+)+)+\$ { respond 200 "redos\n"; }
    route / { respond 200 "root\n"; }
}
CONF
# rget PATH [CURL-ARGS...]: "STATUS BODY" of a request to service r.
rget() {
    local path=$1
    shift
    fetch --path-as-is "$@" "http://127.0.0.1:${PR}${path}"
    R="${CODE} ${BODY}"
}
if serve "${CONF}" "route precedence"; then
    rget /exact
    expect_eq "'= /exact' answers /exact" "${R}" "200 exact"
    rget /exact/x
    expect_eq "but not /exact/x: the prefix route /exact/" "${R}" "200 exact-prefix"
    rget /exactly
    expect_eq "nor /exactly: no route, 404" "${CODE}" "404"
    rget /pic.png
    expect_eq "an exact route before a regex one" "${R}" "200 exact-png"
    rget /img/a.png
    expect_eq "'~* \\.PNG\$' is caseless" "${R}" "200 png"
    rget /img/A.PNG?x=1
    expect_eq "and matches the path without the query" "${R}" "200 png"
    rget /api/v1/x.png
    expect_eq "a regex route before any prefix route" "${R}" "200 png"
    rget /api/x
    expect_eq "/api/x: the plain /api/" "${R}" "200 api"
    rget /api/v1/x
    expect_eq "/api/v1/x: the longest prefix, /api/v1/" "${R}" "200 api-v1"
    rget /api/x -H "X-Canary: 1"
    expect_eq "X-Canary: 1 takes the /api/ with 'match_header X-Canary 1'" "${R}" "200 canary"
    rget /api/x -H "x-canary: 1"
    expect_eq "whatever the header name's case" "${R}" "200 canary"
    rget /api/x -H "X-Canary: 2"
    expect_eq "X-Canary: 2 does not" "${R}" "200 api"
    rget /api/v1/x -H "X-Canary: 1"
    expect_eq "a longer prefix still wins over a canary's condition" "${R}" "200 api-v1"
    rget "/api/x?debug"
    expect_eq "?debug takes the /api/ with 'match_arg debug'" "${R}" "200 debug"
    rget "/api/x?a=1&debug=1"
    expect_eq "so does ?a=1&debug=1" "${R}" "200 debug"
    rget "/api/x?nodebug=1&a=debug"
    expect_eq "not ?nodebug=1&a=debug" "${R}" "200 api"
    rget "/api/x?debug" -H "X-Canary: 1"
    expect_eq "both conditions hold: the first in the file" "${R}" "200 canary"
    rget /api/../exact
    expect_eq "the path is normalised before matching (/api/../exact)" "${R}" "200 exact"
    rget /api/%2e%2e/exact
    expect_eq "and decoded (/api/%2e%2e/exact)" "${R}" "200 exact"
    rget /%65xact
    expect_eq "(/%65xact)" "${R}" "200 exact"

    rget "/v2/users/7?x=1"
    R=$(up "j['upstream'] + ' ' + j['path']")
    expect_eq "a regex route's captures in the upstream path, the query kept" \
        "${R}" "A /api/v2/user/7?x=1"
    rget /v2/users/7/more
    expect_eq "the regex is anchored: /v2/users/7/more has no route" "${CODE}" "404"
    rget /v2/users/7 -I
    expect_eq "'methods GET HEAD': HEAD is served" "${CODE}" "200"
    rget /v2/users/7 -X POST -d x
    hdr Allow
    expect_eq "'methods GET HEAD': POST gets 405 with Allow" "${CODE} ${HV}" \
        "405 GET, HEAD"
    rget /nothing
    expect_eq "a path no route matches (no '/' route): 404" "${CODE}" "404"
    rget /get/ -I
    expect_eq "'methods GET' allows HEAD too" "${CODE}" "200"
    rget /get/ -X PUT
    hdr Allow
    ALLOW=${HV}
    check "'methods GET': PUT gets 405, Allow names GET (${CODE} '${ALLOW}')" \
        grep -qE '^405 (GET|GET, HEAD)$' <<<"${CODE} ${ALLOW}"
    rget /m/x
    expect_eq "GET /m/x: the POST-only regex route is passed over for /m/" "${R}" "200 m-get"
    rget /m/x -X POST
    expect_eq "POST /m/x: the regex route" "${R}" "200 m-post"
    rget /m/x -X PUT
    hdr Allow
    ALLOW=${HV}
    check "PUT /m/x: 405, Allow has GET then POST, each once (${CODE} '${ALLOW}')" \
        grep -qE '^405 GET(, HEAD)?, POST$' <<<"${CODE} ${ALLOW}"

    fetch -X POST -d x "http://127.0.0.1:${PRR}/v2/users/7"
    expect_eq "with a '/' route, a route whose methods do not hold is passed over" \
        "${CODE} ${BODY}" "200 root"
    fetch "http://127.0.0.1:${PRR}/v2/users/7"
    expect_eq "and GET still takes it" "${CODE} ${BODY}" "200 regex"
    fetch "http://127.0.0.1:${PRR}/x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"
    expect_eq "a regex that backtracks without end: no match, the '/' route" \
        "${CODE} ${BODY}" "200 root"
    fetch "http://127.0.0.1:${PRR}/v2/users/7"
    expect_eq "and the next request is served" "${CODE} ${BODY}" "200 regex"
fi

# ---- variables ----
PV=$(free_port)
cat >"${CONF}" <<CONF
workers 1;
shutdown_timeout 5s;
service v {
    listen 127.0.0.1:${PV};
    proxy_header X-Svc-Level \$service;
    route /vars/ {
        header X-Route \$route;
        header X-Svc \$service;
        header X-UA \$http_user_agent;
        header X-Arg \$arg_id;
        header X-Rid \$request_id;
        header X-Evil \$http_x_evil;
        header X-Resp-Absent \$http_x_nothere;
        respond 200 "vars\n";
    }
    route /up/ {
        proxy_header X-Client \$remote_addr;
        proxy_header_unset Cookie;
        proxy_header X-Evil \$http_x_evil;
        proxy_header X-Arg \$arg_id;
        proxy http://127.0.0.1:${PA};
    }
    route /rip/ {
        proxy_header X-Real-IP \$remote_addr;
        proxy_header X-Foo "[\$http_x_foo]";
        proxy_header X-Absent \$http_x_nothere;
        proxy http://127.0.0.1:${PA};
    }
    route /rq/ { proxy http://127.0.0.1:${PA}/up\$request_uri; }
}
CONF
# raw REQUEST: the request (a python bytes literal's body, escapes allowed) on a new
# connection; the answer, until the close, in $D/raw.
raw() {
    python3 - "${PV}" "$1" "${D}/raw" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
s.sendall(eval("b'" + sys.argv[2] + "'"))
d = b""
try:
    while True:
        x = s.recv(65536)
        if not x:
            break
        d += x
except OSError:
    pass
open(sys.argv[3], "wb").write(d)
PY
}
if serve "${CONF}" "variables"; then
    V=http://127.0.0.1:${PV}
    fetch -A "test-agent/1.0" "${V}/vars/x?id=42&b=2"
    hdr X-Route
    expect_eq "header X-Route \$route" "${HV}" "/vars/"
    hdr X-Svc
    expect_eq "header X-Svc \$service" "${HV}" "v"
    hdr X-UA
    expect_eq "header X-UA \$http_user_agent" "${HV}" "test-agent/1.0"
    hdr X-Arg
    expect_eq "header X-Arg \$arg_id" "${HV}" "42"
    hdr X-Rid
    RID1=${HV}
    check "\$request_id is 32 hex digits (${RID1})" grep -qxE '[0-9a-f]{32}' <<<"${RID1}"
    fetch "${V}/vars/x"
    hdr X-Rid
    RID2=${HV}
    if [[ -n "${RID2}" && "${RID1}" != "${RID2}" ]]; then
        ok "and differs between two requests (${RID2})"
    else
        not_ok "and differs between two requests" "got '${RID1}' and '${RID2}'"
    fi

    fetch "${V}/up/x"
    uph x-client
    expect_eq "proxy_header X-Client \$remote_addr reaches the upstream" "${UH}" "127.0.0.1"
    uph x-svc-level
    expect_eq "a service-level proxy_header reaches it too" "${UH}" "v"
    for spelling in "X-Client: 6.6.6.6" "x-client: 6.6.6.6" "X-CLIENT: 6.6.6.6|x-client: 7.7.7.7"; do
        args=()
        IFS='|' read -ra hs <<<"${spelling}"
        for h in "${hs[@]}"; do args+=(-H "${h}"); done
        fetch "${args[@]}" "${V}/up/x"
        uph x-client
        expect_eq "a client's '${spelling}' is replaced, not added to" "${UH}" "127.0.0.1"
    done
    fetch -H "Cookie: a=1" -H "cookie: b=2" -H "X-Kept: 1" "${V}/up/x"
    uph cookie
    COOKIE=${UH}
    uph x-kept
    expect_eq "proxy_header_unset Cookie: no Cookie upstream, other headers kept" \
        "${COOKIE}/${UH}" "/1"
    fetch -H "X-Real-IP: 6.6.6.6" -H "X-Foo: foo" "${V}/rip/x"
    uph x-real-ip
    expect_eq "proxy_header X-Real-IP \$remote_addr reaches the upstream" "${UH}" "127.0.0.1"
    uph x-foo
    expect_eq "proxy_header X-Foo \"[\$http_x_foo]\" sees the client's X-Foo" "${UH}" "[foo]"
    R=$(up "any(k.lower() == 'x-absent' for k, v in j['headers'])")
    expect_eq "proxy_header X-Absent \$http_x_nothere: no X-Absent upstream" "${R}" "False"
    fetch -H "X-Real-IP: 6.6.6.6" "${V}/up/x"
    uph x-real-ip
    expect_eq "a client's X-Real-IP is still dropped where no proxy_header sets it" "${UH}" ""
    fetch "${V}/vars/x"
    if [[ "${CODE}" == 200 ]] && ! grep -qi '^x-resp-absent:' <<<"${HEAD}"; then
        ok "header X-Resp-Absent \$http_x_nothere: no such response header"
    else
        not_ok "header X-Resp-Absent \$http_x_nothere: no such response header" \
            "${CODE}: ${HEAD}"
    fi
    fetch "${V}/rq/x?a=1"
    R=$(up "j['path']")
    expect_eq "proxy .../up\$request_uri: the query once" "${R}" "/up/rq/x?a=1"

    # Hostile values never make a header of their own, in the response or upstream.
    H='\r\nHost: v\r\nConnection: close\r\n'
    for evil in 'X-Evil: a\rInjected: 1' 'X-Evil: a\x00Injected: 1' 'X-Evil: a\x0bb\x7fc' \
        'X-Evil: a%0d%0aInjected: 1' 'X-Evil: a\r\n Injected: 1'; do
        for path in '/vars/x' '/up/x'; do
            raw "GET ${path} HTTP/1.1${H}${evil}\r\n\r\n"
            status=
            read -r _ status _ <"${D}/raw"
            sed '/^\r\?$/q' "${D}/raw" >"${D}/raw.head"
            if [[ ! "${status}" =~ ^(200|400)$ ]]; then
                not_ok "'${evil}' on ${path}: 200 or 400" "got '${status}'"
            elif grep -aqi '^Injected' "${D}/raw.head" ||
                grep -aqi '\["injected"' "${D}/raw"; then
                not_ok "'${evil}' on ${path}: no header of its own" "$(cat -A "${D}/raw" || true)"
            elif LC_ALL=C grep -aqP '[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r.' "${D}/raw.head"; then
                not_ok "'${evil}' on ${path}: no control byte in the response's head" \
                    "$(cat -A "${D}/raw" || true)"
            else
                ok "'${evil}' on ${path}: ${status}, no header of its own"
            fi
        done
    done
    for arg in 'a%0d%0aInjected:%201' 'a%0aInjected:%201' 'a%00b'; do
        for path in '/vars/x' '/up/x'; do
            raw "GET ${path}?id=${arg} HTTP/1.1${H}\r\n"
            if grep -aqi -e '^Injected' -e '\["injected"' "${D}/raw" ||
                ! grep -aq '^HTTP/1.1 200' "${D}/raw"; then
                not_ok "\$arg_id '${arg}' on ${path}: 200, no header of its own" \
                    "$(cat -A "${D}/raw" || true)"
            else
                ok "\$arg_id '${arg}' on ${path}: 200, no header of its own"
            fi
        done
    done
fi

# ---- rewrites ----
PRW=$(free_port)
cat >"${CONF}" <<CONF
workers 1;
shutdown_timeout 5s;
service rw {
    listen 127.0.0.1:${PRW};
    rewrite ^/old/(.*)\$ /new/\$1 permanent;
    route /new/ { respond 200 "new\n"; }
    route /a/ {
        rewrite ^/a/(.*)\$ /b/\$1 last;
        respond 200 "a\n";
    }
    route /b/ {
        header X-Uri \$uri;
        header X-Args \$args;
        respond 200 "b\n";
    }
    route /q/ {
        rewrite ^/q/(.*)\$ /b/\$1?y=2 last;
        respond 200 "q\n";
    }
    route /brk/ {
        rewrite ^/brk/(.*)\$ /b/\$1 break;
        header X-Uri \$uri;
        respond 200 "brk\n";
    }
    route /rw/ {
        rewrite ^/rw/(.*)\$ https://x.test\$request_uri permanent;
        respond 200 "rw\n";
    }
    route /ab {
        rewrite ^/ab/(.*)\$ /xyzw/\$1 break;
        proxy http://127.0.0.1:${PA};
    }
    route /cd/ {
        rewrite ^/cd/(.*)\$ /c/\$1 break;
        proxy http://127.0.0.1:${PA}/base/;
    }
    route /same/ {
        rewrite ^/same/(.*)\$ /same/\$1;
        respond 200 "same\n";
    }
    route = /loop1 {
        rewrite ^ /loop2 last;
        respond 200 "loop1\n";
    }
    route = /loop2 {
        rewrite ^ /loop1 last;
        respond 200 "loop2\n";
    }
}
CONF
if serve "${CONF}" "rewrites"; then
    RW=http://127.0.0.1:${PRW}
    fetch "${RW}/old/x/y?z=1"
    hdr Location
    LOC=${HV}
    case ${CODE}:${LOC} in
    "301:/new/x/y?z=1" | "301:http://127.0.0.1:${PRW}/new/x/y?z=1")
        ok "service rewrite ... permanent: 301 to /new/x/y?z=1 (${LOC})" ;;
    *) not_ok "service rewrite ... permanent: 301 to /new/x/y?z=1" "got ${CODE} '${LOC}'" ;;
    esac
    fetch "${RW}/a/x?k=v"
    hdr X-Uri X-Args
    expect_eq "rewrite ... last: route /b/ answers, the query kept" "${CODE} ${BODY} ${HV}" \
        "200 b /b/x k=v"
    fetch "${RW}/q/x?k=v"
    hdr X-Uri X-Args
    expect_eq "a replacement with '?' gives the query" "${CODE} ${BODY} ${HV}" \
        "200 b /b/x y=2"
    fetch "${RW}/brk/x"
    hdr X-Uri
    expect_eq "rewrite ... break: the route kept, the path changed" "${CODE} ${BODY} ${HV}" \
        "200 brk /b/x"
    fetch "${RW}/rw/x?a=1"
    hdr Location
    expect_eq "a redirect to https://x.test\$request_uri: the query once" "${CODE} ${HV}" \
        "301 https://x.test/rw/x?a=1"
    fetch "${RW}/ab/zz?k=1"
    R=$(up "j['path']")
    expect_eq "route /ab, rewritten to /xyzw/zz ... break: the upstream gets that path" \
        "${R}" "/xyzw/zz?k=1"
    fetch "${RW}/cd/zz"
    R=$(up "j['path']")
    expect_eq "route /cd/ rewritten to /c/zz, proxied to .../base/: /base/c/zz" \
        "${R}" "/base/c/zz"
    fetch "${RW}/same/x"
    expect_eq "a rewrite to the same path does not choose the route again" \
        "${CODE} ${BODY}" "200 same"
    BEFORE=$(workers)
    fetch "${RW}/loop1"
    expect_eq "a rewrite loop: 500" "${CODE}" "500"
    fetch "${RW}/a/y"
    AFTER=$(workers)
    expect_eq "and the same worker serves on" "${CODE} ${BODY} ${AFTER}" "200 b ${BEFORE}"
fi

# ---- error documents ----
PE=$(free_port)
PE2=$(free_port)
PDEAD=$(free_port)
printf '<h1>upstream down</h1>\n' >"${D}/502.html"
cat >"${CONF}" <<CONF
workers 1;
shutdown_timeout 5s;
service e {
    listen 127.0.0.1:${PE};
    error_format problem+json;
    route /m/ {
        methods GET;
        respond 200 "m\n";
    }
    route /up/ { proxy http://127.0.0.1:${PA}; }
    route /dead/ { proxy http://127.0.0.1:${PDEAD}; }
}
service e2 {
    listen 127.0.0.1:${PE2};
    error_page 404 respond "gone\n";
    error_page 502 file ${D}/502.html;
    route /up/ { proxy http://127.0.0.1:${PA}; }
    route /dead/ { proxy http://127.0.0.1:${PDEAD}; }
}
CONF
# problem METHOD TARGET: "STATUS TYPE VERDICT" for a request sent as written: VERDICT is
# "json" when the body is a problem document (strict UTF-8 JSON) whose status is the
# response's and whose instance is a string, else what is wrong with it.
problem() {
    python3 - "${PE}" "$1" "$2" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
s.sendall(sys.argv[2].encode() + b" " + eval("b'" + sys.argv[3] + "'") +
          b" HTTP/1.1\r\nHost: e\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
d = b""
while True:
    x = s.recv(65536)
    if not x:
        break
    d += x
head, _, body = d.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
status = lines[0].split(" ")[1] if " " in lines[0] else "none"
ctype = next((l.split(":", 1)[1].strip() for l in lines[1:]
              if l.lower().startswith("content-type:")), "-")
try:
    j = json.loads(body.decode("utf-8"))
    if str(j.get("status")) != status:
        verdict = "status %r in the body" % j.get("status")
    elif not isinstance(j.get("title"), str) or not isinstance(j.get("instance", ""), str):
        verdict = "no title or a bad instance"
    else:
        verdict = "json"
except (ValueError, AttributeError) as e:
    verdict = "not JSON (%s): %r" % (e, body[:80])
print(status, ctype, verdict)
PY
}
if serve "${CONF}" "error documents"; then
    R=$(problem GET /nope)
    expect_eq "error_format problem+json: a 404 is a problem document" "${R}" \
        "404 application/problem+json json"
    fetch "http://127.0.0.1:${PE}/nope"
    R=$(up "j['type'] + ' ' + j['title'] + ' ' + j['instance']")
    expect_eq "with type, title and instance" "${R}" "about:blank Not Found /nope"
    for t in '/a\"b' '/a%22b' '/a%22%7d%2c%22x%22%3a1' '/a\\b' '/a%5c' '/a%ff' '/a%c3%28' \
        '/%3cscript%3e'; do
        R=$(problem GET "${t}")
        expect_eq "the path '${t}' (404) makes valid JSON" "${R}" \
            "404 application/problem+json json"
    done
    # A control byte in the path is refused before routing (400); a raw byte >= 0x80 may be.
    for t in '/a%0d' '/a%0d%0aX:%201' '/a%00' '/a%1b' '/a\xff'; do
        R=$(problem GET "${t}")
        case ${R} in
        "400 application/problem+json json" | "404 application/problem+json json" | 400\ text/*)
            ok "the path '${t}': ${R%% not JSON*}" ;;
        *) not_ok "the path '${t}': 400 or 404, and valid JSON if problem+json" "got ${R}" ;;
        esac
    done
    R=$(problem PUT /m/x)
    expect_eq "a 405 is a problem document too" "${R}" "405 application/problem+json json"
    R=$(problem GET /dead/x)
    expect_eq "so is a 502 when the upstream is down" "${R}" "502 application/problem+json json"
    fetch "http://127.0.0.1:${PE}/up/status/404"
    hdr Content-Type
    expect_eq "an upstream's own 404 passes unchanged" "${CODE} ${HV} ${BODY}" \
        "404 text/plain upstream 404"

    E2=http://127.0.0.1:${PE2}
    fetch "${E2}/nope"
    expect_eq "error_page 404 respond" "${CODE} ${BODY}" "404 gone"
    fetch "${E2}/dead/x"
    expect_eq "error_page 502 file: the proxy to a closed port gets the file" \
        "${CODE} ${BODY}" "502 <h1>upstream down</h1>"
    hdr Content-Type
    check "typed by its extension (${HV})" grep -q '^text/html' <<<"${HV}"
    fetch "${E2}/up/status/404"
    expect_eq "an upstream's own 404 passes unchanged" "${CODE} ${BODY}" "404 upstream 404"
    fetch "${E2}/up/status/502"
    expect_eq "and its own 502 too" "${CODE} ${BODY}" "502 upstream 502"
fi
stop_percore

# ---- config errors, with file:line:col ----
# bad NAME LINE [WORD]: the config on stdin is refused by percore -t with a message at
# LINE of the file (any column) that holds WORD.
bad() {
    local f=${D}/bad.conf rc
    cat >"${f}"
    "${PERCORE}" -t -c "${f}" >"${D}/out" 2>&1
    rc=$?
    if [[ "${rc}" -ne 0 ]] && awk -v p="^${f}:$2:[0-9]+: " -v w="${3:-}" \
        '$0 ~ p && index($0, w) { found = 1 } END { exit !found }' "${D}/out"; then
        ok "$1 (${f##*/}:$2)"
    else
        not_ok "$1" "exit ${rc}, wanted a message at ${f##*/}:$2 with '${3:-}'" \
            "$(cat "${D}/out" || true)"
    fi
}
bad "a bad regex" 3 "(unclosed" <<CONF
service s {
    listen 127.0.0.1:${P};
    route ~ ^/(unclosed { respond 200; }
}
CONF
bad "an unknown variable" 3 nosuch <<CONF
service s {
    listen 127.0.0.1:${P};
    route / { redirect 302 https://\$nosuch/; }
}
CONF
bad "an unknown variable in a header" 4 nosuch <<CONF
service s {
    listen 127.0.0.1:${P};
    route / {
        header X-A \$nosuch;
        respond 200;
    }
}
CONF
bad "\$3 in a regex route with one group" 3 "\$3" <<CONF
service s {
    listen 127.0.0.1:${P};
    route ~ ^/(a)\$ { proxy http://127.0.0.1:${PA}/x/\$3; }
}
CONF
bad "\$2 in a rewrite with one group" 3 "\$2" <<CONF
service s {
    listen 127.0.0.1:${P};
    rewrite ^/(a)\$ /b/\$2 last;
    route / { respond 200; }
}
CONF
bad "nginx's 'location' suggests 'route'" 3 "did you mean 'route'" <<CONF
service s {
    listen 127.0.0.1:${P};
    location / { }
}
CONF
bad "nginx's 'proxy_set_header' suggests 'proxy_header'" 4 "'proxy_header'" <<CONF
service s {
    listen 127.0.0.1:${P};
    route / {
        proxy_set_header X-A 1;
        proxy http://127.0.0.1:${PA};
    }
}
CONF
bad "a rewrite replacement that is no path nor URL" 3 "replacement 'b'" <<CONF
service s {
    listen 127.0.0.1:${P};
    rewrite ^/a b;
    route / { respond 200; }
}
CONF
bad "two services with one server_name on one plain address" 8 a.test <<CONF
service a {
    listen 127.0.0.1:${P};
    server_name a.test;
    route / { respond 200; }
}
service b {
    listen 127.0.0.1:${P};
    server_name b.test A.test;
    route / { respond 200; }
}
CONF
bad "two defaults on one address" 7 default <<CONF
service a {
    listen 127.0.0.1:${P} default;
    server_name a.test;
    route / { respond 200; }
}
service b {
    listen 127.0.0.1:${P} default;
    server_name b.test;
    route / { respond 200; }
}
CONF
bad "a second service on a plain address without server_name nor default" '(6|7)' \
    server_name <<CONF
service a {
    listen 127.0.0.1:${P};
    server_name a.test;
    route / { respond 200; }
}
service b {
    listen 127.0.0.1:${P};
    route / { respond 200; }
}
CONF
# The language as a whole: the brief's example passes.
printf 'not found\n' >"${D}/404.html"
cat >"${D}/good.conf" <<CONF
service www {
    listen 127.0.0.1:${P} default;
    server_name example.com *.example.com;
    error_format problem+json;
    error_page 404 410 file ${D}/404.html;
    error_page 502 503 504 respond "upstream down\n";
    rewrite ^/old/(.*)\$ /new/\$1 permanent;
    proxy_header X-Request-Id \$request_id;
    route = /healthz { respond 200 "ok\n"; }
    route ~ ^/v(\d+)/users/(\d+)\$ {
        methods GET HEAD;
        proxy http://127.0.0.1:9000/api/v\$1/user/\$2;
    }
    route /api/ {
        match_header X-Canary 1;
        match_arg debug;
        proxy_header X-Client \$remote_addr;
        proxy_header_unset Cookie;
        header X-Served-By \$service;
        rewrite ^/api/v1/(.*)\$ /api/v2/\$1 last;
        proxy http://127.0.0.1:9001;
    }
    route / { redirect 301 https://\$host\$request_uri; }
}
service other {
    listen 127.0.0.1:${P};
    server_name other.test;
    route / { respond 200 "other\n"; }
}
CONF
"${PERCORE}" -t -c "${D}/good.conf" >"${D}/out" 2>&1
expect_eq "a config using the whole language passes -t" "$?:$(cat "${D}/out" || true)" \
    "0:${D}/good.conf: syntax ok"

# ---- a reload from one service to two on one address ----
PL=$(free_port)
reload_conf() { # [SECOND SERVICE: yes]
    printf 'workers 2;\nshutdown_timeout 5s;\n'
    printf 'service a {\n    listen 127.0.0.1:%s;\n' "${PL}"
    [[ -n "${1:-}" ]] && printf '    server_name a.test;\n'
    printf '    route / { proxy http://127.0.0.1:%s; }\n}\n' "${PA}"
    if [[ -n "${1:-}" ]]; then
        printf 'service b {\n    listen 127.0.0.1:%s;\n    server_name b.test;\n' "${PL}"
        printf '    route / { proxy http://127.0.0.1:%s; }\n}\n' "${PB}"
    fi
}
reload_conf >"${CONF}"
start_percore "${CONF}"
# A client asking for b.test, a new connection each time, until $D/stop exists; it keeps
# its counts in $D/counts: "A B FAILED".
python3 - "${PL}" "${D}" <<'PY' &
import http.client, json, os, sys
port, d = int(sys.argv[1]), sys.argv[2]
n = {"A": 0, "B": 0, "failed": 0}
while not os.path.exists(d + "/stop"):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/r", headers={"Host": "b.test"})
        r = c.getresponse()
        n[json.loads(r.read())["upstream"]] += 1
        c.close()
    except Exception:
        n["failed"] += 1
    with open(d + "/counts.new", "w") as f:
        f.write("%d %d %d\n" % (n["A"], n["B"], n["failed"]))
    os.replace(d + "/counts.new", d + "/counts")
PY
CLIENT=$!
# counted WHICH N: the client's count WHICH (1 A, 2 B) is at least N.
counted() {
    local c
    c=$(cut -d' ' -f"$1" "${D}/counts" 2>/dev/null)
    [[ "${c:-0}" -ge "$2" ]]
}
wait_for counted 1 20 || not_ok "the client is running before the reload"
fetch -H "Host: b.test" "http://127.0.0.1:${PL}/"
R=$(up "j['upstream']")
expect_eq "one service: Host b.test reaches it" "${R}" "A"
reload_conf yes >"${CONF}"
DONE=$(grep -c "reload done" "${PC_LOG}")
kill -HUP "${PC_PID}"
wait_for log_count_at_least "reload done" $((DONE + 1)) || not_ok "the reload is done"
wait_for counted 2 20 || not_ok "the client reaches b after the reload"
touch "${D}/stop"
wait "${CLIENT}"
CLIENT=
read -r NA NB NF <"${D}/counts"
if [[ "${NB}" -gt 0 && "${NF}" -eq 0 ]]; then
    ok "a reload to two services on the address: b.test moves to b, no request fails (A ${NA}, B ${NB})"
else
    not_ok "a reload to two services on the address: b.test moves to b, no request fails" \
        "A ${NA}, B ${NB}, failed ${NF}"
fi
fetch -H "Host: a.test" "http://127.0.0.1:${PL}/"
R=$(up "j['upstream']")
expect_eq "and a.test reaches a" "${R}" "A"

# ---- body limits per service on a shared address ----
PB=$(free_port)
cat >"${CONF}" <<CONF
workers 1;
shutdown_timeout 5s;
service small {
    listen 127.0.0.1:${PB};
    server_name small.test;
    max_body_size 10k;
    route / { respond 200 "small\n"; }
}
service large {
    listen 127.0.0.1:${PB};
    server_name large.test;
    max_body_size 1m;
    route / { respond 200 "large\n"; }
}
CONF
if serve "${CONF}" "body limits"; then
    head -c 20000 /dev/zero >"${D}/body20k"
    fetch -H "Host: small.test" --data-binary @"${D}/body20k" "http://127.0.0.1:${PB}/x"
    STATUS_LINE=$(head -n 1 <<<"${HEAD}")
    expect_eq "a shared address: 20 KB to a service allowing 10 KB gets 413" \
        "${STATUS_LINE}" "HTTP/1.1 413 Content Too Large"
    fetch -H "Host: large.test" --data-binary @"${D}/body20k" "http://127.0.0.1:${PB}/x"
    expect_eq "and the service beside it allowing 1 MB takes it" "${CODE} ${BODY}" "200 large"
fi

# ---- request headers toward a FastCGI application ----
FSOCK=${D}/fcgi.sock
python3 "$(dirname "$0")/fcgi_app.py" "unix:${FSOCK}" &
UP_PIDS+=($!)
wait_for test -S "${FSOCK}" || bail "FastCGI app did not start"
PF=$(free_port)
cat >"${CONF}" <<CONF
workers 1;
shutdown_timeout 5s;
service fc {
    listen 127.0.0.1:${PF};
    error_format problem+json;
    proxy_header X-Svc \$service;
    route /gone/ { fastcgi unix:${D}/no-such.sock; }
    route /app/ {
        proxy_header X-Client \$remote_addr;
        proxy_header_unset Cookie;
        fastcgi unix:${FSOCK};
    }
}
CONF
if serve "${CONF}" "FastCGI request headers"; then
    fetch -H "X-Client: 6.6.6.6" -H "x-client: 7.7.7.7" -H "Cookie: a=b" \
        "http://127.0.0.1:${PF}/app/params"
    FV=$(awk '/^HTTP_(X_CLIENT|X_SVC|COOKIE)=/ { printf "%s ", $0 }' <<<"${BODY}")
    expect_eq "FastCGI: proxy_header replaces the client's lines, proxy_header_unset drops" \
        "${FV}" "HTTP_X_CLIENT=127.0.0.1 HTTP_X_SVC=fc "
    hdr Content-Type
    expect_eq "FastCGI: the application's own answer passes error_format" "${CODE} ${HV}" \
        "200 text/plain"
    fetch "http://127.0.0.1:${PF}/gone/x"
    hdr Content-Type
    ST=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])' <<<"${BODY}" \
        2>/dev/null || echo "not JSON: ${BODY:0:60}")
    expect_eq "FastCGI: an application that cannot be reached is percore's error" \
        "${CODE:0:1}xx ${HV} ${ST}" "5xx application/problem+json ${CODE}"
fi

finish
