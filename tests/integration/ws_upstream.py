#!/usr/bin/env python3
"""Upstreams for the WebSocket tests (python3-websockets).

usage: ws_upstream.py WS_PORT RAW_PORT

WS_PORT: a WebSocket echo server: every message comes back as it came (text or binary),
on any path. It sends no pings, so a tunnel with nothing to say stays idle.
RAW_PORT: an HTTP server that answers every request with a 101 (Upgrade: websocket),
whatever the request asked, as a broken upstream would. To a request whose head names
websocket, the 101 and a text frame "hello" go in one write, and then every byte it gets
comes back as it came (frames unparsed); to any other, the 101 alone, then nothing.
Both listen on 127.0.0.1; tests wait for the ports.
"""
import asyncio
import sys

import websockets


async def echo(ws, _path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def raw_101(reader, writer):
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    try:
        req = await reader.readuntil(b"\r\n\r\n")
        if b"websocket" not in req.lower():
            writer.write(head)
            await writer.drain()
            await reader.read()  # until the proxy closes
        else:
            writer.write(head + b"\x81\x05hello")
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def main():
    ws_port, raw_port = int(sys.argv[1]), int(sys.argv[2])
    raw = await asyncio.start_server(raw_101, "127.0.0.1", raw_port)
    async with websockets.serve(echo, "127.0.0.1", ws_port, ping_interval=None,
                                max_size=None):
        async with raw:
            await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
