#!/usr/bin/env python3
"""HTTP/2 connections across a worker's drain, over TLS (ALPN h2).

usage: h2drain.py PORT MASTER_PID
Opens connection A (handshake done, one request answered) and connection B (TCP only,
accepted by the worker, no ClientHello yet), then sends SIGHUP to the master. The old
worker drains:
  A  gets the final GOAWAY; the client then sends PINGs the server will never read, also
     after it has seen the server's FIN. A lingering close reads and drops them; a plain
     close answers them with a reset.
  B  finishes its handshake only after that, and sends a request: it must be told to go
     away too, in libh2o's two steps (a GOAWAY asking for no new streams, then the final
     one naming the last stream served), and be closed, not served until shutdown_timeout.
Prints one JSON line with what each connection saw.
"""
import json
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

import hpack

port, master = int(sys.argv[1]), int(sys.argv[2])
WAIT = 10  # seconds for any one event; shutdown_timeout in the test is far longer
END_STREAM, END_HEADERS = 0x1, 0x4
HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x1, 0x3, 0x4, 0x6, 0x7


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def request(sid):
    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/"),
                                    (":scheme", "https"), (":authority", "localhost")])
    return frame(HEADERS, END_HEADERS | END_STREAM, sid, block)


class Conn:
    """A TLS connection read frame by frame; events are its GOAWAYs, answered streams
    and how it ended ("eof", "reset" or None while open)."""

    def __init__(self):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.tls = None
        self.buf = b""
        self.goaways = []
        self.answered = set()
        self.end = None  # how reading ended
        self.reset = False  # whether a send met a reset

    def handshake(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        self.tls = ctx.wrap_socket(self.raw, server_hostname="localhost")
        assert self.tls.selected_alpn_protocol() == "h2"
        self.tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))

    def send(self, data):
        try:
            self.tls.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True
        except ssl.SSLError:
            pass  # the server's TLS has ended; what it sent is still to be read

    def send_raw(self, data):
        """Bytes under TLS, which may have ended: whether TCP still takes them."""
        try:
            os.write(self.tls.fileno(), data)
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True

    def read_once(self, seconds):
        """One read of what has come within seconds; sets end at EOF or a reset."""
        if self.end is not None:
            return
        if not self.tls.pending() and not select.select([self.tls], [], [], seconds)[0]:
            return
        try:
            got = self.tls.recv(65536)
        except ConnectionResetError:
            self.end = "reset"
            return
        except ssl.SSLError:
            got = b""  # closed without close_notify
        if not got:
            self.end = "eof"
            return
        self.buf += got
        self.parse()

    def read_until(self, done):
        """Reads frames until done() holds, the connection ends or WAIT passes."""
        deadline = time.monotonic() + WAIT
        while not done() and self.end is None and time.monotonic() < deadline:
            self.read_once(deadline - time.monotonic())

    def parse(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            if ftype == GOAWAY:
                self.goaways.append(int.from_bytes(payload[:4], "big") & 0x7fffffff)
            elif ftype == HEADERS and sid:
                self.answered.add(sid)
            elif ftype == SETTINGS and not flags & 1:
                self.send(frame(SETTINGS, 1, 0))


def final_goaway(conn):
    return any(last != 0x7fffffff for last in conn.goaways)


def accept_queue_empty():
    lines = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                           text=True, check=False).stdout.splitlines()
    return bool(lines) and all(line.split()[1] == "0" for line in lines)


a = Conn()
a.handshake()
a.send(request(1))
a.read_until(lambda: 1 in a.answered)
b = Conn()
deadline = time.monotonic() + WAIT
while not accept_queue_empty() and time.monotonic() < deadline:
    time.sleep(0.01)
os.kill(master, signal.SIGHUP)

# A: the final GOAWAY, then bytes the server will not read. Once the server has closed
# for good, the first of them is answered with a reset and a later send fails.
a.read_until(lambda: final_goaway(a))
a_final = final_goaway(a)
after_eof = 0
for _ in range(500):
    a.send_raw(frame(PING, 0, 0, b"12345678") * 8)
    if a.reset:
        break
    a.read_once(0.01)
    if a.end == "reset":
        break
    if a.end == "eof":
        after_eof += 1
        if after_eof == 20:
            break

# B: its handshake and first request only now.
b.handshake()
b.send(request(1))
b.read_until(lambda: final_goaway(b) and b.end is not None)
print(json.dumps({
    "a_final_goaway": a_final, "a_end": "reset" if a.reset else a.end,
    "b_goaways": b.goaways, "b_answered": sorted(b.answered),
    "b_end": "reset" if b.reset else b.end,
}))
