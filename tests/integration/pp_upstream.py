#!/usr/bin/env python3
"""An upstream that takes a PROXY protocol header, version 1 or 2, on every connection,
for 336-proxy-protocol-out.sh.

usage: pp_upstream.py PORT LABEL [CERT KEY]

Each connection must start with a PROXY header; a connection without one, or with a
malformed one, is closed without a byte in answer. With CERT and KEY (PEM files) TLS
starts after the header, which comes in clear (as HAProxy's send-proxy sends it). Then
HTTP/1.1 with keep-alive: every request gets 200 and JSON

  {"upstream": LABEL, "conn": N, "nreq": M, "path": PATH,
   "pp": {"version": 1|2, "command": "PROXY"|"LOCAL"|"UNKNOWN",
          "src": "ADDR:PORT", "dst": "ADDR:PORT"}}

N numbers the connections from 1 in the order their headers came, M the requests on
connection N; src and dst are "-" when the header has no addresses, IPv6 ones are written
"[ADDR]:PORT". Lines "conn N: HEADER" go to stdout as headers come (flushed), the
malformed ones as "bad: WHY".
"""
import ipaddress
import json
import socket
import socketserver
import ssl
import struct
import sys
import threading

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
port, label = int(sys.argv[1]), sys.argv[2]
tls = None
if len(sys.argv) == 5:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[3], sys.argv[4])
lock = threading.Lock()
conns = {"n": 0}


class Bad(Exception):
    pass


def recv_exact(sock, n):
    """Exactly n bytes, read no further (what follows is TLS's or HTTP's)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise Bad("closed inside the header")
        data += chunk
    return data


def addr(family, raw, port_):
    a = ipaddress.ip_address(raw)
    return ("[%s]:%d" if family == 6 else "%s:%d") % (a, port_)


def read_v1(sock, first):
    line = first
    while not line.endswith(b"\r\n"):
        if len(line) >= 107:
            raise Bad("v1 line longer than 107 bytes")
        line += recv_exact(sock, 1)
    f = line[:-2].decode("ascii").split(" ")
    if f[0] != "PROXY":
        raise Bad("no PROXY header: %r" % line)
    if f[1] == "UNKNOWN":
        return {"version": 1, "command": "UNKNOWN", "src": "-", "dst": "-"}
    if f[1] not in ("TCP4", "TCP6") or len(f) != 6:
        raise Bad("v1: %r" % line)
    fam = 4 if f[1] == "TCP4" else 6
    src, dst = ipaddress.ip_address(f[2]), ipaddress.ip_address(f[3])
    if src.version != fam or dst.version != fam:
        raise Bad("v1: address of another family: %r" % line)
    return {"version": 1, "command": "PROXY",
            "src": addr(fam, f[2], int(f[4])), "dst": addr(fam, f[3], int(f[5]))}


def read_v2(sock, first):
    head = first + recv_exact(sock, 16 - len(first))
    if head[:12] != SIG:
        raise Bad("bad v2 signature")
    ver_cmd, fam = head[12], head[13]
    body = recv_exact(sock, struct.unpack(">H", head[14:16])[0])
    if ver_cmd == 0x20:
        return {"version": 2, "command": "LOCAL", "src": "-", "dst": "-"}
    if ver_cmd != 0x21:
        raise Bad("v2: version and command 0x%02x" % ver_cmd)
    if fam == 0x11 and len(body) >= 12:
        s, d, sp, dp = struct.unpack(">4s4sHH", body[:12])
        return {"version": 2, "command": "PROXY", "src": addr(4, s, sp), "dst": addr(4, d, dp)}
    if fam == 0x21 and len(body) >= 36:
        s, d, sp, dp = struct.unpack(">16s16sHH", body[:36])
        return {"version": 2, "command": "PROXY", "src": addr(6, s, sp), "dst": addr(6, d, dp)}
    raise Bad("v2: family 0x%02x with %d bytes" % (fam, len(body)))


def read_header(sock):
    first = recv_exact(sock, 1)
    if first == b"P":
        return read_v1(sock, first)
    if first == b"\r":
        return read_v2(sock, first)
    raise Bad("no PROXY header (first byte %r)" % first)


def serve_http(f, w, conn, pp):
    nreq = 0
    while True:
        line = f.readline()
        if not line:
            return
        method, path, _ = line.decode("latin-1").split(" ", 2)
        length, close = 0, False
        while True:
            h = f.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            if name.strip().lower() == "connection" and "close" in value.lower():
                close = True
        if length:
            f.read(length)
        nreq += 1
        body = json.dumps({"upstream": label, "conn": conn, "nreq": nreq, "path": path,
                           "pp": pp}).encode() + b"\n"
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        if method != "HEAD":
            w.write(body)
        w.flush()
        if close:
            return


class H(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(60)
        try:
            pp = read_header(sock)
        except (Bad, UnicodeDecodeError, ValueError, OSError) as e:
            print("bad: %s" % e, flush=True)
            return
        with lock:
            conns["n"] += 1
            conn = conns["n"]
        print("conn %d: %s" % (conn, json.dumps(pp)), flush=True)
        try:
            if tls is not None:
                sock = tls.wrap_socket(sock, server_side=True)
            f, w = sock.makefile("rb"), sock.makefile("wb")
            serve_http(f, w, conn, pp)
        except (OSError, ValueError, ssl.SSLError):
            pass


class TCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


TCP(("127.0.0.1", port), H).serve_forever()
