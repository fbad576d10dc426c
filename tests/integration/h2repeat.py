#!/usr/bin/env python3
"""An HTTP/2 GET (TLS, ALPN h2) that repeats one header line COUNT times at a byte each.

usage: h2repeat.py PORT PATH NAME VALUE COUNT
The line is sent once as a literal that HPACK indexes, then COUNT - 1 times as a one-byte
reference to that entry, across HEADERS and CONTINUATION frames: a header block of about
COUNT bytes that the server decodes into COUNT lines. Prints one JSON line: the response's
status (0 when none came before the server closed or 60 s passed), its body, and the
seconds from the first frame to the end of the response. No library beyond python's own.
"""
import json
import socket
import ssl
import struct
import sys
import time

port, path, name, value, count = (int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(),
                                  sys.argv[4].encode(), int(sys.argv[5]))
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def integer(n, bits, first=0):
    """An HPACK integer with an N-bit prefix, first holding the bits above it."""
    top = (1 << bits) - 1
    if n < top:
        return bytes([first | n])
    out, n = bytearray([first | top]), n - top
    while n >= 128:
        out.append(n & 127 | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def string(b):
    return integer(len(b), 7) + b


# :method GET (static 2), :scheme https (7), :path and :authority by their static names
# (4, 1) without indexing; the line with incremental indexing (dynamic entry 62), then
# indexed references to it.
block = (b"\x82\x87" + integer(4, 4) + string(path.encode()) + integer(1, 4) +
         string(b"localhost") + b"\x40" + string(name) + string(value) +
         bytes([0x80 | 62]) * (count - 1))

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
t0 = time.monotonic()
chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
for i, c in enumerate(chunks):
    flags = END_HEADERS if i == len(chunks) - 1 else 0
    s.sendall(frame(1, flags | END_STREAM, 1, c) if i == 0 else frame(9, flags, 1, c))

s.settimeout(60)
buf, status, body, done = b"", 0, b"", False
try:
    while not done:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            ftype, flags = buf[3], buf[4]
            sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
            payload, buf = buf[9:9 + n], buf[9 + n:]
            if ftype == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0))  # SETTINGS ack
            elif sid == 1 and ftype == 1:
                # :status as percore's encoder sends it: indexed (8 to 14) or by name (8).
                if payload[0] & 0x80:
                    status = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404,
                              14: 500}.get(payload[0] & 0x7f, 0)
                else:
                    status = int(payload[2:2 + (payload[1] & 0x7f)])
                done = bool(flags & END_STREAM)
            elif sid == 1 and ftype == 0:
                body += payload
                done = bool(flags & END_STREAM)
            elif ftype == 7:
                done = True
except socket.timeout:
    pass
print(json.dumps({"status": status, "body": body.decode("utf-8", "replace"),
                  "seconds": round(time.monotonic() - t0, 3)}))
