#!/usr/bin/env python3
"""Protocol conformance: every client event of docs/protocol.md §2 sent with no payload, `{}`, unknown fields,
wrong types and non-object payloads, plus the documented behaviours around them (unknown events, game over,
lobby seats freed after WS_RECONNECT_WINDOW, a second socket of one user, the per-user event budget). Every
answer is checked against the code the protocol documents. Driven by tests/protocol_conformance.rs.

    python3 protocol_conformance.py <scenario.json>

Scenario: {"url": main server, "limited_url": server with RATE_LIMIT_USER=3, "limit": 3,
           "window_s": WS_RECONNECT_WINDOW of the main server in seconds, "tokens": {name: access token}}

Prints `RESULT {"cases": n, "failures": [...]}`; exits 1 when any case failed.
"""

import asyncio
import json
import os
import sys
import time

# The shared table client is imported from beside this file; no __pycache__ is left in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import socketio  # noqa: E402

from avalon_table import Player, play, seat_everyone  # noqa: E402

MISSING = object()  # "send no argument at all"

# Every client event, its valid payload, and a wrong-typed value for each of its fields.
EVENTS = {
    "room:create": ({"options": {}}, {"options": 5}),
    "room:join": ({"code": "ABCDEF"}, {"code": 7}),
    "room:leave": ({}, {}),
    "room:ready": ({"ready": True}, {"ready": "yes"}),
    "room:options": ({"options": {}}, {"options": "all"}),
    "game:start": ({}, {}),
    "game:propose": ({"team": [0, 1]}, {"team": "0,1"}),
    "game:vote": ({"approve": True}, {"approve": 1}),
    "game:quest": ({"success": True}, {"success": None}),
    "game:assassinate": ({"target": 1}, {"target": -1}),
    "game:lady": ({"target": 1}, {"target": "1"}),
    "chat:send": ({"text": "hi"}, {"text": ["hi"]}),
    "sync": ({}, {}),
}
# What an outsider (no room) is answered for a well-formed payload of each event.
OUTSIDER = {
    "room:create": "OK",  # creates a room: the case leaves it again
    "room:join": "ROOM_NOT_FOUND",
    "room:leave": "NOT_IN_ROOM",
    "room:ready": "NOT_IN_ROOM",
    "room:options": "NOT_IN_ROOM",
    "game:start": "NOT_IN_ROOM",
    "game:propose": "NOT_IN_ROOM",
    "game:vote": "NOT_IN_ROOM",
    "game:quest": "NOT_IN_ROOM",
    "game:assassinate": "NOT_IN_ROOM",
    "game:lady": "NOT_IN_ROOM",
    "chat:send": "NOT_IN_ROOM",
    "sync": "OK",
}


class Checker:
    def __init__(self):
        self.cases = 0
        self.failures = []

    def expect(self, what, reply, code):
        self.cases += 1
        got = "OK" if isinstance(reply, dict) and reply.get("ok") else None
        if got is None:
            error = reply.get("error") if isinstance(reply, dict) else None
            got = error.get("code") if isinstance(error, dict) else f"malformed ack {reply!r}"
        if got != code:
            self.failures.append(f"{what}: expected {code}, got {got} ({reply!r})")
        return reply


async def send(client, event, payload):
    """Emits `event` with an acknowledgement; MISSING sends no argument, a tuple several."""
    if payload is MISSING:
        return await client.call(event, timeout=10)
    return await client.call(event, payload, timeout=10)


async def connect(url, token, sessions=None):
    client = socketio.AsyncClient(reconnection=False, request_timeout=10)
    got = {"session": None, "states": []}

    @client.on("session")
    async def on_session(data):
        got["session"] = data

    @client.on("room:state")
    async def on_state(data):
        got["states"].append(data)

    await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    await wait_for(lambda: got["session"] is not None, "the session event")
    if sessions is not None:
        sessions.append(client)
    return client, got


async def wait_for(condition, what, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def payload_shapes(check, url, token):
    """Every event × no payload, {}, unknown field, each wrong-typed field and every non-object payload."""
    client, _ = await connect(url, token)
    try:
        for event, (valid, wrong) in EVENTS.items():
            no_fields = not valid
            expected_empty = OUTSIDER[event] if no_fields or event == "room:create" else "BAD_REQUEST"
            for label, payload in (("no payload", MISSING), ("{}", {})):
                reply = check.expect(f"{event} with {label}", await send(client, event, payload), expected_empty)
                if event == "room:create" and reply.get("ok"):
                    check.expect("room:leave after room:create", await send(client, "room:leave", {}), "OK")
            check.expect(
                f"{event} with an unknown field",
                await send(client, event, {**valid, "x": 1}),
                "BAD_REQUEST",
            )
            for field, value in wrong.items():
                check.expect(
                    f"{event} with {field}={json.dumps(value)}",
                    await send(client, event, {**valid, field: value}),
                    "BAD_REQUEST",
                )
            for label, payload in (
                ("null", (None,)),
                ("an array", [valid]),
                ("a string", "payload"),
                ("a number", 5),
                ("two arguments", (valid, valid)),
            ):
                check.expect(f"{event} with {label}", await send(client, event, payload), "BAD_REQUEST")
            reply = check.expect(f"{event} well formed, outside a room", await send(client, event, valid), OUTSIDER[event])
            if event == "room:create" and reply.get("ok"):
                check.expect("room:leave after room:create", await send(client, "room:leave", {}), "OK")
        for label, payload in (("no payload", MISSING), ("{}", {}), ("a string", "x")):
            check.expect(f"an unknown event with {label}", await send(client, "room:destroy", payload), "UNKNOWN_EVENT")
    finally:
        await client.disconnect()


async def lobby_refusals(check, url, tokens):
    """In a lobby with no game: moves answer NO_GAME, a non-host is NOT_HOST."""
    host, _ = await connect(url, tokens["host"])
    guest, _ = await connect(url, tokens["guest"])
    try:
        code = (await send(host, "room:create", MISSING))["data"]["room"]["code"]
        check.expect("room:join as a second member", await send(guest, "room:join", {"code": code.lower()}), "OK")
        check.expect("game:vote in a lobby", await send(guest, "game:vote", {"approve": True}), "NO_GAME")
        check.expect("game:propose in a lobby", await send(host, "game:propose", {"team": [0, 1]}), "NO_GAME")
        check.expect("game:start by a guest", await send(guest, "game:start", MISSING), "NOT_HOST")
        check.expect("game:start with two members", await send(host, "game:start", {}), "BAD_PLAYER_COUNT")
        check.expect("room:create while in a room", await send(guest, "room:create", {}), "ALREADY_IN_ROOM")
        check.expect("sync with no payload in a room", await send(guest, "sync", MISSING), "OK")
        check.expect("room:leave with no payload", await send(guest, "room:leave", MISSING), "OK")
        check.expect("room:leave with no payload", await send(host, "room:leave", MISSING), "OK")
    finally:
        await host.disconnect()
        await guest.disconnect()


async def after_game_over(check, url, tokens):
    """A finished game answers every move with GAME_OVER until the next game starts."""
    players = [Player(i, tokens[f"p{i}"], url) for i in range(5)]
    for player in players:
        await player.connect()
    try:
        await seat_everyone(players, {})
        await play(players, {"timeout": 120})
        for player in players:
            check.expect(f"game:vote by seat {player.view['seat']} after game over",
                         await player.call("game:vote", {"approve": True}), "GAME_OVER")
        host = players[0]
        check.expect("game:propose after game over", await host.call("game:propose", {"team": [0, 1]}), "GAME_OVER")
        check.expect("game:lady after game over", await host.call("game:lady", {"target": 1}), "GAME_OVER")
        check.expect("game:assassinate after game over", await host.call("game:assassinate", {"target": 1}), "GAME_OVER")
        check.expect("game:quest after game over", await host.call("game:quest", {"success": True}), "GAME_OVER")
    finally:
        for player in players:
            if player.client is not None and player.client.connected:
                await player.client.disconnect()


async def freed_lobby_seat(check, url, tokens, window_s):
    """A lobby seat freed after WS_RECONNECT_WINDOW is not handed back on reconnect."""
    host, host_got = await connect(url, tokens["keeper"])
    leaver, _ = await connect(url, tokens["leaver"])
    code = (await send(host, "room:create", {}))["data"]["room"]["code"]
    check.expect("room:join before leaving", await send(leaver, "room:join", {"code": code}), "OK")
    await leaver.disconnect()
    await wait_for(
        lambda: any(not m["connected"] for s in host_got["states"][-1:] for m in s["members"]),
        "the host to see the leaver disconnected",
    )
    # The server stamped the disconnect before the host saw it, so the window has surely passed once this
    # much time went by after that (the condition itself, not a guess at server timing).
    seen_at = time.monotonic()
    while time.monotonic() - seen_at <= window_s + 0.2:
        await asyncio.sleep(0.05)
    again, again_got = await connect(url, tokens["leaver"])
    check.cases += 1
    if again_got["session"]["room"] is not None:
        check.failures.append(f"a freed lobby seat came back on reconnect: session {again_got['session']}")
    reply = check.expect("sync after the seat was freed", await send(again, "sync", {}), "OK")
    check.cases += 1
    if reply.get("data", {}).get("room") is not None:
        check.failures.append(f"sync shows a room after the seat was freed: {reply}")
    check.expect("room:ready by the host", await send(host, "room:ready", {"ready": True}), "OK")
    check.cases += 1
    try:
        # The next change frees the seat; its state may reach the handler just after the acknowledgement.
        await wait_for(lambda: len(host_got["states"][-1]["members"]) == 1, "the freed seat to leave the room")
    except AssertionError:
        check.failures.append(f"the freed seat is still in the room: {host_got['states'][-1]['members']}")
    joined = check.expect("room:join after the seat was freed", await send(again, "room:join", {"code": code}), "OK")
    check.cases += 1
    if joined.get("data", {}).get("resumed") is not False:
        check.failures.append(f"joining again after the window must be a new membership: {joined}")
    await again.disconnect()
    await host.disconnect()


async def second_socket(check, url, tokens):
    """A second socket of one user is put in the user's room and receives its states like the first."""
    first, first_got = await connect(url, tokens["twin"])
    code = (await send(first, "room:create", {}))["data"]["room"]["code"]
    second, second_got = await connect(url, tokens["twin"])
    check.cases += 1
    if second_got["session"]["room"] != code:
        check.failures.append(f"the second socket was not put in the room: {second_got['session']}")
    await wait_for(lambda: second_got["states"], "room:state on the second socket")
    before = len(first_got["states"])
    check.expect("room:ready from the second socket", await send(second, "room:ready", {"ready": True}), "OK")
    check.cases += 1
    try:
        await wait_for(
            lambda: len(first_got["states"]) > before and first_got["states"][-1]["members"][0]["ready"],
            "the change made on the second socket to reach the first",
        )
    except AssertionError as missed:
        check.failures.append(str(missed))
    await second.disconnect()
    await first.disconnect()


async def per_user_budget(check, url, tokens, limit):
    """RATE_LIMIT_USER counts every socket of one user together; another user has their own budget."""
    first, _ = await connect(url, tokens["flooder"])
    second, _ = await connect(url, tokens["flooder"])
    other, _ = await connect(url, tokens["bystander"])
    try:
        for n in range(limit):
            check.expect(f"event {n + 1} of {limit}", await send(first, "room:leave", {}), "NOT_IN_ROOM")
        check.expect("one more event from the user's second socket", await send(second, "room:leave", {}), "RATE_LIMITED")
        check.expect("sync is not counted", await send(second, "sync", {}), "OK")
        check.expect("another user's event", await send(other, "room:leave", {}), "NOT_IN_ROOM")
    finally:
        for client in (first, second, other):
            await client.disconnect()


async def main():
    with open(sys.argv[1]) as file:
        scenario = json.load(file)
    check = Checker()
    url, tokens = scenario["url"], scenario["tokens"]
    await payload_shapes(check, url, tokens["shapes"])
    await lobby_refusals(check, url, tokens)
    await freed_lobby_seat(check, url, tokens, scenario["window_s"])
    await second_socket(check, url, tokens)
    await per_user_budget(check, scenario["limited_url"], tokens, scenario["limit"])
    await after_game_over(check, url, tokens)
    print("RESULT " + json.dumps({"cases": check.cases, "failures": check.failures}), flush=True)
    if check.failures:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
