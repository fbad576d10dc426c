#!/usr/bin/env python3
"""A minimal FastCGI responder for tests: answers each request with its CGI variables and
body length as text; a path ending in /params gets every HTTP_* parameter, one NAME=VALUE a
line, sorted. usage: fcgi_app.py unix:/PATH|PORT"""
import os
import socket
import socketserver
import struct
import sys

BEGIN, END, PARAMS, STDIN, STDOUT = 1, 3, 4, 5, 6


def read_exact(f, n):
    b = f.read(n)
    if len(b) < n:
        raise EOFError
    return b


def records(f):
    while True:
        ver, typ, rid, clen, plen, _ = struct.unpack(">BBHHBB", read_exact(f, 8))
        data = read_exact(f, clen)
        read_exact(f, plen)
        yield typ, rid, data


def parse_params(buf):
    out, i = {}, 0
    while i < len(buf):
        lens = []
        for _ in range(2):
            n = buf[i]
            if n >> 7:
                n = struct.unpack(">I", buf[i:i + 4])[0] & 0x7FFFFFFF
                i += 4
            else:
                i += 1
            lens.append(n)
        k = buf[i:i + lens[0]].decode()
        i += lens[0]
        out[k] = buf[i:i + lens[1]].decode(errors="replace")
        i += lens[1]
    return out


def record(typ, rid, data=b""):
    return struct.pack(">BBHHBB", 1, typ, rid, len(data), 0, 0) + data


class H(socketserver.StreamRequestHandler):
    def handle(self):
        params, stdin, keep = b"", b"", False
        try:
            for typ, rid, data in records(self.rfile):
                if typ == BEGIN:
                    keep = bool(data[2] & 1)
                    params, stdin = b"", b""
                elif typ == PARAMS:
                    params += data
                elif typ == STDIN and data:
                    stdin += data
                elif typ == STDIN:
                    p = parse_params(params)
                    if (p.get("PATH_INFO") or "").endswith("/params"):
                        body = "".join("%s=%s\n" % kv for kv in sorted(p.items())
                                       if kv[0].startswith("HTTP_")).encode()
                    else:
                        body = ("method=%s script=%s path_info=%s query=%s body=%d root=%s\n" % (
                            p.get("REQUEST_METHOD"), p.get("SCRIPT_NAME"), p.get("PATH_INFO"),
                            p.get("QUERY_STRING"), len(stdin), p.get("DOCUMENT_ROOT", ""))
                        ).encode()
                    out = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body
                    self.wfile.write(record(STDOUT, rid, out) + record(STDOUT, rid) +
                                     record(END, rid, struct.pack(">IB3x", 0, 0)))
                    self.wfile.flush()
                    if not keep:
                        return
        except EOFError:
            return


class Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


where = sys.argv[1]
if where.startswith("unix:"):
    if os.path.exists(where[5:]):
        os.unlink(where[5:])
    Unix(where[5:], H).serve_forever()
else:
    TCP(("127.0.0.1", int(where)), H).serve_forever()
