#!/usr/bin/env python3
"""Idle Socket.IO connections through the edge, opened and closed on command: the connection load the
autoscale stack test ramps past `target_connections` (xtask/tests/autoscale_stack.rs).

    python3 connections.py <edge base url>

Driven on stdin, one command per line:
  open N    sign in N more users (dev-login) and connect each (WebSocket transport, through nginx)
  close N   disconnect the N newest
  close-oldest N   disconnect the N oldest (the newest stay, e.g. those on a replica about to be drained)
  quit      disconnect everyone and exit

After each command prints `OPEN <json>`: {"open": connections up, "reconnects": n, "errors": [...]}. A
connection dropped by a draining game server is reconnected through the edge, as a real client does.
"""

import asyncio
import json
import os
import sys
import time

import socketio

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../chaos_support"))
from players import dev_login  # noqa: E402

STATE = {"reconnects": 0, "errors": []}


class Connection:
    def __init__(self, base, token):
        self.base = base
        self.token = token
        self.client = None
        self.closing = False

    async def connect(self):
        deadline = time.monotonic() + 90
        while True:
            client = socketio.AsyncClient(reconnection=False)

            @client.on("disconnect")
            async def on_disconnect(*_):
                if client is self.client and not self.closing:
                    STATE["reconnects"] += 1
                    asyncio.get_running_loop().create_task(self.connect())

            try:
                # The bearer token in the upgrade's Authorization header is the edge's user key (nginx hashes
                # game-server connections on it, docs/nginx.md); without it every test client, arriving
                # from one address, would hash to one game server.
                await client.connect(
                    self.base,
                    headers={"Authorization": f"Bearer {self.token}"},
                    auth={"token": self.token},
                    transports=["websocket"],
                    wait_timeout=5,
                )
                self.client = client
                return
            except Exception as err:  # noqa: BLE001 - the edge may be between reloads: retry
                if time.monotonic() > deadline:
                    STATE["errors"].append(f"could not connect for 90 s: {err}")
                    return
                await asyncio.sleep(0.2)

    async def close(self):
        self.closing = True
        if self.client is not None and self.client.connected:
            await self.client.disconnect()


async def read_commands():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        yield line.decode().strip()


async def main():
    base = sys.argv[1]
    stamp = int(time.time())
    made = 0
    connections = []
    async for command in read_commands():
        if command.startswith("open "):
            wanted = int(command.split(" ", 1)[1])
            fresh = []
            for _ in range(wanted):
                token = dev_login(base, f"autoscale-{stamp}-{made}")
                made += 1
                fresh.append(Connection(base, token))
            await asyncio.gather(*(c.connect() for c in fresh))
            connections.extend(fresh)
        elif command.startswith("close-oldest "):
            count = min(int(command.split(" ", 1)[1]), len(connections))
            closing, connections = connections[:count], connections[count:]
            await asyncio.gather(*(c.close() for c in closing))
        elif command.startswith("close "):
            count = min(int(command.split(" ", 1)[1]), len(connections))
            keep = len(connections) - count
            closing, connections = connections[keep:], connections[:keep]
            await asyncio.gather(*(c.close() for c in closing))
        elif command == "quit":
            break
        up = sum(1 for c in connections if c.client is not None and c.client.connected)
        print("OPEN " + json.dumps({"open": up, "reconnects": STATE["reconnects"], "errors": STATE["errors"]}), flush=True)
    await asyncio.gather(*(c.close() for c in connections))


if __name__ == "__main__":
    asyncio.run(main())
