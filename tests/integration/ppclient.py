#!/usr/bin/env python3
"""A client that starts its connection with a PROXY protocol header, for 320-realip.sh.

  ppclient.py PORT HEADER [--bind ADDR] [--tls] [--split] [--xff VALUE] [--hold|--eof]

HEADER is one of
  v1:SRC:SPORT        a version 1 line (TCP4 or TCP6 by SRC's family)
  v1-unknown          "PROXY UNKNOWN"
  v2:SRC:SPORT        version 2, PROXY command, with TLVs (ALPN, authority, NOOP, a custom one)
  v2-local            version 2, LOCAL command (the balancer's own connection)
  hex:BYTES           these bytes (hex), whatever they are
  none                no header at all

--split sends the header in pieces of 1 to 3 bytes (a pause between, so that they arrive
as separate segments); --tls does the TLS handshake after the header, its ClientHello in
the same write as the header unless --split; --hold sends the
header and then nothing, waiting for the server to close (--eof: after closing its own
sending side), and prints "CLOSED" (or "ANSWERED"). Else a GET / with the optional
X-Forwarded-For, and prints the response's status code and its X-Client header, or
"CLOSED" when the server closed the connection without an answer. Ends within 20 s.
"""
import argparse
import ipaddress
import socket
import ssl
import struct
import sys
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def header(spec):
    kind, _, rest = spec.partition(":")
    if kind == "none":
        return b""
    if kind == "hex":
        return bytes.fromhex(rest)
    if kind == "v1-unknown":
        return b"PROXY UNKNOWN\r\n"
    if kind == "v2-local":
        return SIG + b"\x20\x00\x00\x00"
    src, _, sport = rest.rpartition(":")
    ip = ipaddress.ip_address(src)
    if kind == "v1":
        fam, dst = ("TCP4", "192.0.2.1") if ip.version == 4 else ("TCP6", "2001:db8::1")
        return ("PROXY %s %s %s %s 443\r\n" % (fam, src, dst, sport)).encode()
    if kind == "v2":
        dst = ipaddress.ip_address("192.0.2.1" if ip.version == 4 else "2001:db8::1")
        fam = 0x11 if ip.version == 4 else 0x21
        body = ip.packed + dst.packed + struct.pack(">HH", int(sport), 443)
        body += b"\x01\x00\x08http/1.1" + b"\x02\x00\x09localhost"
        body += b"\x04\x00\x03\x00\x00\x00" + b"\xe0\x00\x04abcd"
        return SIG + bytes([0x21, fam]) + struct.pack(">H", len(body)) + body
    sys.exit("ppclient.py: unknown header " + spec)


def read_all(s):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            break
    return data


class TLS:
    """TLS over the socket through memory BIOs, so that the ClientHello can go out in the
    same write as the header before it."""

    def __init__(self, sock, first):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        pending = first
        while True:
            try:
                self.obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            data = pending + self.out.read()
            pending = b""
            if data:
                sock.sendall(data)
            if done:
                return
            self._fill()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed")
        self.inc.write(chunk)

    def sendall(self, data):
        self.obj.write(data)
        self.sock.sendall(self.out.read())

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                try:
                    self._fill()
                except ConnectionResetError:
                    return b""
            except ssl.SSLZeroReturnError:
                return b""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("header")
    ap.add_argument("--bind")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--split", action="store_true")
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--eof", action="store_true")
    ap.add_argument("--xff")
    a = ap.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if a.bind:
        s.bind((a.bind, 0))
    s.connect(("127.0.0.1", a.port))
    h = header(a.header)
    try:
        if a.tls and not a.split:
            # The header and the ClientHello in one write: TLS starts from what was read
            # past the header.
            s = TLS(s, h)
            h = b""
        if a.split:
            i = 0
            while i < len(h):
                n = 1 + i % 3
                s.sendall(h[i:i + n])
                i += n
                time.sleep(0.005)
        else:
            s.sendall(h)
        if a.eof:
            s.shutdown(socket.SHUT_WR)
        if a.hold or a.eof:
            print("CLOSED" if read_all(s) == b"" else "ANSWERED")
            return
        if a.tls and a.split:
            s = TLS(s, b"")
        req = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        if a.xff is not None:
            req += "X-Forwarded-For: %s\r\n" % a.xff
        s.sendall((req + "\r\n").encode())
        resp = read_all(s)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
        resp = b""
    if not resp.startswith(b"HTTP/"):
        print("CLOSED")
        return
    lines = resp.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    client = [line.split(":", 1)[1].strip() for line in lines[1:]
              if line.lower().startswith("x-client:")]
    print(lines[0].split(" ")[1], client[0] if client else "-")


main()
