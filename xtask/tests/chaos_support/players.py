#!/usr/bin/env python3
"""Scripted players for the chaos suite (xtask/tests/chaos.rs): tables of five python-socketio clients that
sign in through the edge, play Avalon games back to back through nginx by docs/protocol.md, and come back
by themselves whatever the operator does to the stack (drain notices, killed or frozen game servers, slot
switches, maintenance).

    python3 players.py <edge base url> <tables>

Driven on stdin, one command per line:
  start <phase>   tables start games (again) and count them under <phase>
  stop            no new games; wait until every game started in the phase has finished (or 180 s), then
                  print `PHASE <json>`: started, finished, unfinished, reconnects, drain notices,
                  maintenance refusals, tolerated refusals and errors
  quit            disconnect everyone and exit

Prints `READY <json>` once every player is signed in and seated. A player never gives up on a game: a
dropped socket is reconnected through the edge (any instance resumes the seat from Redis).
"""

import asyncio
import json
import sys
import time
import urllib.request

import os

import socketio

# The websocket tests' bot plays by the same strategy; one copy of it.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../services/websocket/tests/clients"))
from avalon_table import choose_action  # noqa: E402

# Refusals a bot can cause itself by acting on a view that was already overtaken; nothing changes.
TOLERATED = {"ALREADY_VOTED", "ALREADY_PLAYED", "WRONG_PHASE", "NOT_YOUR_TURN"}
# Refusals of game:start that mean "not now": someone is reconnecting, or maintenance is on.
START_LATER = {"PLAYER_DISCONNECTED", "NOT_ALL_READY", "MAINTENANCE"}
THINK_SECONDS = 0.15
CALL_TIMEOUT = 5


def log(message):
    print(f"players: {message}", file=sys.stderr, flush=True)


def dev_login(base, openid):
    request = urllib.request.Request(
        f"{base}/api/v1/auth/dev-login",
        data=json.dumps({"openid": openid}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    for attempt in range(50):
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)["access_token"]
        except Exception as err:  # the edge may be between reloads: retry for a while
            if attempt == 49:
                raise
            log(f"dev-login {openid}: {err}; retrying")
            time.sleep(0.2)


class Counters:
    def __init__(self):
        self.reset(None)

    def reset(self, phase):
        self.phase = phase
        self.started = 0
        self.finished = 0
        self.reconnects = 0
        self.drain_notices = 0
        self.maintenance_refusals = 0
        self.tolerated = 0
        self.errors = []
        self.outcomes = {}


COUNTERS = Counters()


class Player:
    def __init__(self, base, index, token):
        self.base = base
        self.index = index
        self.token = token
        self.client = None
        self.view = None
        self.room = None
        self.session = None
        self.connected = asyncio.Event()
        self.closing = False
        self.watcher = None

    async def connect(self):
        """Connects through the edge, retrying while the stack is between states (draining, restarting)."""
        delay = 0.1
        deadline = time.monotonic() + 90
        while True:
            client = socketio.AsyncClient(reconnection=False, request_timeout=CALL_TIMEOUT)
            self._wire(client)
            try:
                await client.connect(self.base, auth={"token": self.token}, transports=["websocket"], wait_timeout=5)
                self.client = client
                self.connected.set()
                return
            except Exception as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"player {self.index} could not reconnect for 90 s: {err}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _wire(self, client):
        @client.on("session")
        async def on_session(data):
            self.session = data

        @client.on("room:state")
        async def on_room(data):
            if self.room is None or data["version"] >= self.room["version"]:
                self.room = data

        @client.on("game:view")
        async def on_view(data):
            if self.view is None or data["version"] >= self.view["version"]:
                self.view = data

        @client.on("server:reconnect")
        async def on_reconnect(_data):
            COUNTERS.drain_notices += 1

        @client.on("disconnect")
        async def on_disconnect(*_):
            if client is self.client and not self.closing:
                self.connected.clear()
                self.watcher = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self):
        COUNTERS.reconnects += 1
        await self.connect()

    async def call(self, event, payload):
        """The ack, or None when the socket dropped meanwhile (the caller retries after the reconnect)."""
        await asyncio.wait_for(self.connected.wait(), timeout=120)
        try:
            return await self.client.call(event, payload, timeout=CALL_TIMEOUT)
        except Exception:
            return None

    async def must(self, event, payload, later=(), keep_trying=lambda: True):
        """Repeats `event` until it is accepted; refusals in `later` wait and retry while `keep_trying()`,
        else give None."""
        while True:
            reply = await self.call(event, payload)
            if reply is None:
                await asyncio.sleep(0.1)
                continue
            if reply.get("ok"):
                return reply["data"]
            code = reply["error"]["code"]
            if code in later:
                if code == "MAINTENANCE":
                    COUNTERS.maintenance_refusals += 1
                if not keep_trying():
                    return None
                await asyncio.sleep(0.25)
                continue
            raise RuntimeError(f"player {self.index} {event}: {reply['error']}")

    async def close(self):
        self.closing = True
        if self.client is not None and self.client.connected:
            await self.client.disconnect()


class Table:
    def __init__(self, index, players):
        self.index = index
        self.players = players
        self.host = players[0]
        self.playing = asyncio.Event()  # set while the phase wants new games
        self.in_game = False
        self.idle = asyncio.Event()
        self.idle.set()

    async def seat(self):
        created = await self.host.must("room:create", {"options": {"percival": True, "morgana": True, "lady_of_the_lake": True}})
        code = created["room"]["code"]
        for player in self.players[1:]:
            await player.must("room:join", {"code": code})

    def game_over(self, game_id):
        room = self.host.room
        return room is not None and room["game"] is not None and room["game"]["id"] == game_id and room["game"]["outcome"] is not None

    async def run(self):
        while True:
            await self.playing.wait()
            self.idle.clear()
            try:
                for player in self.players:
                    await player.must("room:ready", {"ready": True}, later={"GAME_IN_PROGRESS"})
                if not self.playing.is_set():
                    continue
                started = await self.host.must("game:start", {}, later=START_LATER, keep_trying=self.playing.is_set)
                if started is None:
                    continue
                game_id = started["game_id"]
                COUNTERS.started += 1
                await self.play(game_id)
                COUNTERS.finished += 1
                winner = self.host.room["game"]["outcome"]["winner"]
                COUNTERS.outcomes[winner] = COUNTERS.outcomes.get(winner, 0) + 1
            except Exception as err:
                COUNTERS.errors.append(f"table {self.index}: {err}")
                log(f"table {self.index}: {err}")
                await asyncio.sleep(1)
            finally:
                self.idle.set()

    async def play(self, game_id):
        acted = set()
        deadline = time.monotonic() + 240
        while not self.game_over(game_id):
            if time.monotonic() > deadline:
                raise RuntimeError(f"game {game_id} did not finish in 240 s")
            progressed = False
            for player in self.players:
                view = player.view
                if view is None or not player.connected.is_set():
                    continue
                choice = choose_action(view)
                if choice is None:
                    continue
                key = (game_id, view["table"]["phase"], len(view["table"]["log"]), player.index)
                if key in acted:
                    continue
                acted.add(key)
                await asyncio.sleep(THINK_SECONDS)
                reply = await player.call(*choice)
                progressed = True
                if reply is None:
                    acted.discard(key)  # the socket dropped: act again on the view we get back
                elif not reply["ok"]:
                    code = reply["error"]["code"]
                    if code in TOLERATED:
                        COUNTERS.tolerated += 1
                    else:
                        raise RuntimeError(f"player {player.index} {choice[0]}: {reply['error']}")
            if not progressed:
                await asyncio.sleep(0.05)


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
    base, tables_wanted = sys.argv[1], int(sys.argv[2])
    tables = []
    stamp = int(time.time())
    for t in range(tables_wanted):
        players = []
        for seat in range(5):
            index = t * 5 + seat
            token = dev_login(base, f"chaos-{stamp}-{index}")
            player = Player(base, index, token)
            await player.connect()
            players.append(player)
        table = Table(t, players)
        await table.seat()
        tables.append(table)
    runners = [asyncio.create_task(table.run()) for table in tables]
    print("READY " + json.dumps({"players": tables_wanted * 5, "tables": tables_wanted}), flush=True)

    async for command in read_commands():
        if command.startswith("start "):
            COUNTERS.reset(command.split(" ", 1)[1])
            for table in tables:
                table.playing.set()
        elif command == "stop":
            for table in tables:
                table.playing.clear()
            deadline = time.monotonic() + 180
            for table in tables:
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    await asyncio.wait_for(table.idle.wait(), timeout=remaining)
                except asyncio.TimeoutError:
                    pass
            report = {
                "phase": COUNTERS.phase,
                "started": COUNTERS.started,
                "finished": COUNTERS.finished,
                "unfinished": COUNTERS.started - COUNTERS.finished,
                "outcomes": COUNTERS.outcomes,
                "reconnects": COUNTERS.reconnects,
                "drain_notices": COUNTERS.drain_notices,
                "maintenance_refusals": COUNTERS.maintenance_refusals,
                "tolerated": COUNTERS.tolerated,
                "errors": COUNTERS.errors,
            }
            print("PHASE " + json.dumps(report), flush=True)
        elif command == "quit":
            break
    for runner in runners:
        runner.cancel()
    for table in tables:
        for player in table.players:
            await player.close()


if __name__ == "__main__":
    asyncio.run(main())
