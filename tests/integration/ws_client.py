#!/usr/bin/env python3
"""A WebSocket client for the tunnel tests (python3-websockets); prints what it saw.

usage: ws_client.py echo URL COUNT [PAUSE_AT FLAG]
       ws_client.py idle URL
       ws_client.py until-close URL FLAG
       ws_client.py raw PORT PATH

echo: COUNT messages (text and binary, 1 B to 64 KiB, ten in flight at a time), each
  checked against its echo; after PAUSE_AT of them it prints "paused" and goes on once
  FLAG exists. Prints "echoed N" and closes normally; exits 1 at the first wrong or
  missing echo.
idle: one message, then nothing: prints "closed after S" (seconds from its echo until
  the connection closed).
until-close: ten messages, "paused", then once FLAG exists one message every 0.1 s until
  the connection closes: prints "echoed N after go, closed after S" (S from the go).
A wss:// URL is verified against the CA file in $WS_CA, but not its host name.
raw: against ws_upstream.py's raw server through 127.0.0.1:PORT, a WebSocket handshake and
  a frame in one write; prints "101, hello, frame back" when the 101 came with the
  server's "hello" frame after it and then the client's frame came back.
Every wait is bounded (60 s).
"""
import asyncio
import os
import socket
import ssl
import sys
import time

import websockets

SIZES = [1, 17, 125, 126, 1000, 65535, 65536, 4096, 300, 20000]
LIMIT = 60


def message(i):
    body = (("%d:" % i) * (SIZES[i % len(SIZES)] // 2 + 1))[:SIZES[i % len(SIZES)]]
    return body if i % 2 == 0 else body.encode()


def say(*args):
    print(*args, flush=True)


async def wait_flag(flag):
    say("paused")
    deadline = time.monotonic() + LIMIT
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            raise SystemExit("no go within %d s" % LIMIT)
        await asyncio.sleep(0.05)


async def roundtrip(ws, i):
    await ws.send(message(i))
    got = await asyncio.wait_for(ws.recv(), LIMIT)
    if got != message(i):
        raise SystemExit("message %d came back wrong (%d bytes)" % (i, len(got)))


def connect(url):
    extra = {}
    if url.startswith("wss:"):
        extra["ssl"] = ssl.create_default_context(cafile=os.environ["WS_CA"])
        extra["ssl"].check_hostname = False  # the certificate names localhost
    return websockets.connect(url, ping_interval=None, max_size=None, open_timeout=LIMIT,
                              close_timeout=10, **extra)


async def echo(url, count, pause_at=None, flag=None):
    async with connect(url) as ws:
        i = 0
        while i < count:
            if i == pause_at:
                await wait_flag(flag)
            end = min(i + 10, count)
            if pause_at is not None and i < pause_at:
                end = min(end, pause_at)
            for k in range(i, end):
                await ws.send(message(k))
            for k in range(i, end):
                got = await asyncio.wait_for(ws.recv(), LIMIT)
                if got != message(k):
                    raise SystemExit("message %d came back wrong (%d bytes)" % (k, len(got)))
            i = end
        say("echoed %d" % i)


async def idle(url):
    async with connect(url) as ws:
        await roundtrip(ws, 0)
        start = time.monotonic()
        try:
            await asyncio.wait_for(ws.recv(), LIMIT)
            raise SystemExit("a message came on an idle tunnel")
        except websockets.ConnectionClosed:
            say("closed after %.1f" % (time.monotonic() - start))


async def until_close(url, flag):
    async with connect(url) as ws:
        for i in range(10):
            await roundtrip(ws, i)
        await wait_flag(flag)
        start = time.monotonic()
        n = 0
        try:
            while time.monotonic() - start < LIMIT:
                await roundtrip(ws, 10 + n)
                n += 1
                await asyncio.sleep(0.1)
            raise SystemExit("still open after %d s" % LIMIT)
        except websockets.ConnectionClosed:
            say("echoed %d after go, closed after %.1f" % (n, time.monotonic() - start))


def raw(port, path):
    frame = b"\x82\x83\x01\x02\x03\x04" + bytes(b ^ m for b, m in zip(b"abc", b"\x01\x02\x03"))
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
           "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" % path).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=LIMIT) as s:
        s.sendall(req + frame)
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 7 + len(frame):
            more = s.recv(65536)
            if not more:
                break
            got += more
    head, _, rest = got.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.1 ") else b"?"
    say("%s, %s, %s" % (status.decode(), "hello" if rest[:7] == b"\x81\x05hello" else rest[:7],
                        "frame back" if rest[7:] == frame else rest[7:]))


def main():
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "echo":
        pause = (int(sys.argv[4]), sys.argv[5]) if len(sys.argv) > 5 else (None, None)
        asyncio.run(echo(url, int(sys.argv[3]), *pause))
    elif mode == "raw":
        raw(int(sys.argv[2]), sys.argv[3])
    elif mode == "idle":
        asyncio.run(idle(url))
    else:
        asyncio.run(until_close(url, sys.argv[3]))


if __name__ == "__main__":
    main()
