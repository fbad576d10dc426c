#!/usr/bin/env python3
"""Receive journald native-protocol datagrams at PATH and append one JSON object per
entry (fields plus the sender's pid as _PID) to OUT, until killed."""
import json
import socket
import struct
import sys

path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
with open(out, "a") as f:
    while True:
        data, anc, _, _ = s.recvmsg(1 << 16, socket.CMSG_SPACE(12))
        entry = {}
        for level, typ, cd in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                entry["_PID"] = str(struct.unpack("iII", cd[:12])[0])
        i = 0
        while i < len(data):
            nl = data.index(b"\n", i)
            line = data[i:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                i = nl + 1
            else:
                k = line
                size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
                v = data[nl + 9:nl + 9 + size]
                i = nl + 9 + size + 1
            entry[k.decode()] = v.decode(errors="replace")
        f.write(json.dumps(entry) + "\n")
        f.flush()
