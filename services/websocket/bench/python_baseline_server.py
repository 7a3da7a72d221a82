#!/usr/bin/env python3
"""The baseline of `cargo xtask bench ws`: a python-socketio server doing the same room broadcast as
avalon-ws, shared between instances through Redis (python-socketio's AsyncRedisManager), on aiohttp.

    python3 python_baseline_server.py --port 4001 --redis redis://127.0.0.1:6390/0

Events (all acknowledged with {"ok": true}):
  join        {"room": name}                     enter a room
  bench:event {"room": name, "seq": n, ...}      broadcast the payload as `bench:event` to the room
A handshake without `auth.token` is refused, as avalon-ws does (the token is not verified: no JWT library).
"""

import argparse

import socketio
from aiohttp import web


def build(redis_url):
    manager = socketio.AsyncRedisManager(redis_url, channel="bench-baseline")
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, cors_allowed_origins=[])

    @sio.event
    async def connect(sid, environ, auth):
        if not isinstance(auth, dict) or not auth.get("token"):
            raise socketio.exceptions.ConnectionRefusedError("AUTH_REQUIRED")

    @sio.on("join")
    async def join(sid, data):
        await sio.enter_room(sid, data["room"])
        return {"ok": True}

    @sio.on("bench:event")
    async def broadcast(sid, data):
        await sio.emit("bench:event", data, room=data["room"])
        return {"ok": True}

    app = web.Application()
    sio.attach(app)
    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    args = parser.parse_args()
    web.run_app(build(args.redis), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
