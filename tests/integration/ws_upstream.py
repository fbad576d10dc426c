#!/usr/bin/env python3
"""Upstreams for the WebSocket tests (python3-websockets).

usage: ws_upstream.py WS_PORT RAW_PORT

WS_PORT: a WebSocket echo server: every message comes back as it came (text or binary),
on any path. It sends no pings, so a tunnel with nothing to say stays idle.
RAW_PORT: an HTTP server that answers every request with a bare 101 (Upgrade: websocket)
and then says nothing, as a broken upstream would, whatever the request asked.
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
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the proxy closes
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
