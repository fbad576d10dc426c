#!/usr/bin/env python3
"""A client for 336-proxy-protocol-out.sh: requests through percore to pp_upstream.py,
printing what the upstream saw of each.

usage: ppout_client.py HOST PORT PATH [--bind ADDR]... [-n ROUNDS] [--pp SRC:SPORT]
                       [--xff VALUE]

One keep-alive connection per --bind address (127.0.0.1 when none is given), opened
first; then ROUNDS (1) rounds of one GET PATH on each connection in turn. --pp starts
each connection with the PROXY v1 header "PROXY TCP4 SRC 192.0.2.1 SPORT 443" (for a
`proxy_protocol` listen); --xff sends X-Forwarded-For: VALUE with each request. One line
per response:

  I LOCAL VERSION COMMAND SRC DST CONN NREQ

I numbers the connection (0 for the first --bind), LOCAL is its own address as
"ADDR:PORT", and the rest is what the upstream answered ("-" for what it did not say),
or "I ERROR WHY" when no 200 came. Ends within 20 s.
"""
import argparse
import json
import socket


def request(f, s, path, xff):
    req = "GET %s HTTP/1.1\r\nHost: test\r\n" % path
    if xff is not None:
        req += "X-Forwarded-For: %s\r\n" % xff
    s.sendall((req + "\r\n").encode())
    status = f.readline().decode("latin-1").split(" ")
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = f.read(length)
    if len(status) < 2 or status[1] != "200":
        raise ValueError("status %s %r" % (status[1] if len(status) > 1 else "-", body[:80]))
    return json.loads(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("--bind", action="append")
    ap.add_argument("-n", type=int, default=1)
    ap.add_argument("--pp")
    ap.add_argument("--xff")
    a = ap.parse_args()

    conns = []
    for b in a.bind or ["127.0.0.1"]:
        fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(20)
        s.bind((b, 0))
        s.connect((a.host, a.port))
        if a.pp:
            src, _, sport = a.pp.rpartition(":")
            s.sendall(("PROXY TCP4 %s 192.0.2.1 %s 443\r\n" % (src, sport)).encode())
        local = s.getsockname()
        local = ("[%s]:%d" if fam == socket.AF_INET6 else "%s:%d") % local[:2]
        conns.append((s, s.makefile("rb"), local))
    for _ in range(a.n):
        for i, (s, f, local) in enumerate(conns):
            try:
                r = request(f, s, a.path, a.xff)
            except (OSError, ValueError) as e:
                print(i, "ERROR", str(e).replace("\n", " "))
                continue
            pp = r.get("pp", {})
            print(i, local, pp.get("version", "-"), pp.get("command", "-"),
                  pp.get("src", "-"), pp.get("dst", "-"), r.get("conn", "-"),
                  r.get("nreq", "-"))


main()
