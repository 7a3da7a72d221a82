#!/usr/bin/env python3
"""Connects one Socket.IO client (python-socketio, an independent implementation) to a server and reports.

    python3 socketio_connect.py URL TOKEN

Uses the WebSocket transport only, so through nginx the connection needs the Upgrade handshake to be
proxied. Prints `CONNECTED <sid>` and exits 0 once the server accepted the handshake (namespace connect
with `auth: {token}`); exits 1 with the reason otherwise.
"""

import asyncio
import sys

import socketio


async def main(url, token):
    client = socketio.AsyncClient(reconnection=False)
    refused = []

    @client.event
    async def connect_error(data):
        refused.append(data)

    try:
        await asyncio.wait_for(
            client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10),
            timeout=20,
        )
    except Exception as err:  # noqa: BLE001 - any failure is the answer
        print(f"FAILED {type(err).__name__}: {err} {refused}")
        return 1
    print(f"CONNECTED {client.get_sid()} transport={client.transport()}")
    await client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
