#!/usr/bin/env python3
"""An independent Socket.IO client (python-socketio) that seats players at an avalon-ws table and plays a
whole game by the protocol in docs/protocol.md. Driven by the Rust integration tests.

    python3 avalon_table.py <scenario.json>

Scenario (JSON):
  urls        list of server base URLs; player i connects to urls[i % len(urls)]
  tokens      one access token per player (the first creates the room and is its host)
  options     room options sent with room:create
  disrupt     optional {"pid": int, "signal": "KILL"|"TERM", "after_quests": int, "url": str}:
              once that many quests are resolved, send the signal to the server process and move the
              players of `url` to the other URL (they must get their seat and view back)
  maintenance_redis  optional redis URL: before the start, switch the shared maintenance flag on there,
              expect every player to be told and the start to be refused with MAINTENANCE, then
              switch it off and expect to be told again
  timeout     seconds for the whole game (default 120)
  mode        "game" (default) or "refusals": try handshakes listed in `handshakes` and report the codes
  handshakes  for mode=refusals: list of {"url", "auth"} (auth may be null)

Prints one line `RESULT <json>` and exits 0 when the game ended (or the refusals were collected); exits 1
with a reason otherwise.
"""

import asyncio
import json
import os
import signal
import sys
import time

import socketio

PHASES_WITH_ACTIONS = {"team_proposal", "team_vote", "quest", "lady_of_the_lake", "assassination"}


class Failure(Exception):
    pass


class Player:
    def __init__(self, index, token, url):
        self.index = index
        self.token = token
        self.url = url
        self.view = None
        self.room = None
        self.session = None
        self.acted = set()
        self.errors = []
        self.reconnect_notices = 0
        self.maintenance = []
        self.views_received = 0
        self.client = None
        self.disconnected = asyncio.Event()

    async def connect(self, url=None):
        if url:
            self.url = url
        self.disconnected = asyncio.Event()
        client = socketio.AsyncClient(reconnection=False, request_timeout=10)
        self.client = client

        @client.on("session")
        async def on_session(data):
            self.session = data

        @client.on("room:state")
        async def on_room(data):
            if self.room is None or data["version"] >= self.room["version"]:
                self.room = data

        @client.on("game:view")
        async def on_view(data):
            self.views_received += 1
            check_view_secrecy(data)
            if self.view is None or data["version"] >= self.view["version"]:
                self.view = data

        @client.on("server:reconnect")
        async def on_reconnect(data):
            assert data["code"] == "DRAINING", data
            self.reconnect_notices += 1

        @client.on("server:maintenance")
        async def on_maintenance(data):
            self.maintenance.append(data)

        @client.on("disconnect")
        async def on_disconnect(*_):
            self.disconnected.set()

        await client.connect(self.url, auth={"token": self.token}, transports=["websocket"], wait_timeout=10)

    async def call(self, event, payload):
        reply = await self.client.call(event, payload, timeout=10)
        if not isinstance(reply, dict) or "ok" not in reply:
            raise Failure(f"{event}: malformed ack {reply!r}")
        return reply

    async def must(self, event, payload):
        reply = await self.call(event, payload)
        if not reply["ok"]:
            raise Failure(f"player {self.index} {event} refused: {reply['error']}")
        return reply["data"]


def check_view_secrecy(view):
    """No hidden role may reach a player: roles only after the game, knowledge within the rules."""
    table = view["table"]
    if table["phase"] != "game_over" and table["roles"] is not None:
        raise Failure("roles revealed before the end of the game")
    role = view["role"]
    insights = {entry["insight"] for entry in view["knowledge"]}
    if role in ("loyal_servant", "oberon") and view["knowledge"]:
        raise Failure(f"{role} was shown {view['knowledge']}")
    if role == "percival" and insights - {"merlin_or_morgana"}:
        raise Failure(f"percival was shown {insights}")
    if role in ("merlin", "assassin", "minion", "morgana", "mordred") and insights - {"evil"}:
        raise Failure(f"{role} was shown {insights}")


def choose_action(view):
    """A legal move for this seat, or None. Good plays Success; Evil fails quest 2 only, so games reach
    the quests, the Lady of the Lake and the assassination."""
    table = view["table"]
    seat = view["seat"]
    phase = table["phase"]
    if phase not in PHASES_WITH_ACTIONS or seat not in table["pending"]:
        return None
    players = len(table["players"])
    quest = table["quest"]
    if phase == "team_proposal":
        size = table["quest_track"][quest - 1]["team_size"]
        return "game:propose", {"team": [(seat + offset) % players for offset in range(size)]}
    if phase == "team_vote":
        attempt = table["proposal"]["attempt"]
        # Reject some first proposals so rejections and leader rotation are exercised too.
        approve = attempt > 1 or (seat + quest) % 3 != 0
        return "game:vote", {"approve": approve}
    if phase == "quest":
        fail = view["side"] == "evil" and quest == 2
        return "game:quest", {"success": not fail}
    if phase == "lady_of_the_lake":
        lady = table["lady"]
        barred = set(lady["previous_holders"]) | {seat}
        target = next(other for other in range(players) if other not in barred)
        return "game:lady", {"target": target}
    if phase == "assassination":
        known_evil = {entry["seat"] for entry in view["knowledge"] if entry["insight"] == "evil"}
        target = next(other for other in range(players) if other != seat and other not in known_evil)
        return "game:assassinate", {"target": target}
    return None


async def wait_for(condition, what, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise Failure(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def maintenance_refuses_the_start(players, redis_url):
    import redis.asyncio as aioredis

    flag = aioredis.from_url(redis_url)
    notice = {"enabled": True, "message": "Upgrading the tables", "retry_after": 120}
    await flag.set("avalon:maintenance", json.dumps(notice))
    await wait_for(lambda: all(p.maintenance and p.maintenance[-1]["enabled"] for p in players), "maintenance notices")
    if players[0].maintenance[-1] != notice:
        raise Failure(f"unexpected notice {players[0].maintenance[-1]}")
    refused = await players[0].call("game:start", {})
    if refused["ok"] or refused["error"]["code"] != "MAINTENANCE":
        raise Failure(f"start during maintenance was not refused: {refused}")
    await flag.delete("avalon:maintenance")
    await wait_for(lambda: all(not p.maintenance[-1]["enabled"] for p in players), "maintenance end notices")
    await flag.aclose()
    return refused["error"]


async def seat_everyone(players, options, maintenance_redis=None):
    host = players[0]
    created = await host.must("room:create", {"options": options})
    code = created["room"]["code"]
    for player in players[1:]:
        joined = await player.must("room:join", {"code": code})
        assert not joined["resumed"]
    chat = await players[1].must("chat:send", {"text": "  good luck, all  "})
    assert chat["message"]["text"] == "good luck, all", chat
    for player in players:
        await player.must("room:ready", {"ready": True})
    refusal = None
    if maintenance_redis:
        refusal = await maintenance_refuses_the_start(players, maintenance_redis)
    started = await host.must("game:start", {})
    return code, started["game_id"], refusal


def resolved_quests(view):
    return sum(1 for slot in view["table"]["quest_track"] if slot["result"] is not None)


async def play(players, scenario):
    deadline = time.monotonic() + scenario.get("timeout", 120)
    disrupt = scenario.get("disrupt")
    disrupted = False
    actions = 0
    while True:
        if time.monotonic() > deadline:
            phases = [p.view and p.view["table"]["phase"] for p in players]
            raise Failure(f"game did not finish in time; phases {phases}")
        views = [p.view for p in players]
        if all(v is not None and v["table"]["phase"] == "game_over" for v in views):
            return actions
        if disrupt and not disrupted and views[0] is not None and resolved_quests(views[0]) >= disrupt["after_quests"]:
            disrupted = True
            await disrupt_server(players, disrupt, scenario["urls"])
            continue
        progressed = False
        for player in players:
            view = player.view
            if view is None:
                continue
            choice = choose_action(view)
            if choice is None:
                continue
            key = (view["table"]["phase"], len(view["table"]["log"]))
            if key in player.acted:
                continue
            player.acted.add(key)
            event, payload = choice
            reply = await player.call(event, payload)
            actions += 1
            progressed = True
            if not reply["ok"]:
                code = reply["error"]["code"]
                # A late view can make a bot repeat itself; the server refuses and nothing changes.
                if code not in ("ALREADY_VOTED", "ALREADY_PLAYED", "WRONG_PHASE", "NOT_YOUR_TURN"):
                    raise Failure(f"player {player.index} {event} {payload}: {reply['error']}")
                player.errors.append(code)
        if not progressed:
            await asyncio.sleep(0.01)


async def disrupt_server(players, disrupt, urls):
    victims = [p for p in players if p.url == disrupt["url"]]
    survivor = next(url for url in urls if url != disrupt["url"])
    os.kill(disrupt["pid"], getattr(signal, "SIG" + disrupt["signal"]))
    for player in victims:
        try:
            await asyncio.wait_for(player.disconnected.wait(), timeout=30)
        except asyncio.TimeoutError:
            raise Failure(f"player {player.index} was never disconnected by the {disrupt['signal']}")
    for player in victims:
        before = player.view["version"]
        # Cleared so the checks below read the new connection's session, not the one from the first
        # handshake (the view can arrive before the session event).
        player.view = None
        player.room = None
        player.session = None
        await player.connect(survivor)
        for _ in range(500):
            if player.view is not None and player.session is not None:
                break
            await asyncio.sleep(0.01)
        if player.view is None:
            raise Failure(f"player {player.index} got no view back after reconnecting")
        if player.session is None:
            raise Failure(f"player {player.index} got no session event after reconnecting")
        if player.view["version"] < before:
            raise Failure(f"player {player.index} got an older state back: {player.view['version']} < {before}")
        if player.session["room"] is None:
            raise Failure(f"player {player.index} was not put back in the room")


async def run_game(scenario):
    urls = scenario["urls"]
    players = [Player(i, token, urls[i % len(urls)]) for i, token in enumerate(scenario["tokens"])]
    for player in players:
        await player.connect()
    code, game_id, refusal = await seat_everyone(players, scenario.get("options", {}), scenario.get("maintenance_redis"))
    try:
        actions = await play(players, scenario)
        final = players[0].view
        for player in players:
            if player.view["table"]["log"] != final["table"]["log"]:
                raise Failure(f"player {player.index} ended with a different event log")
        room = players[0].room
        return {
            "room": code,
            "game_id": game_id,
            "outcome": final["table"]["outcome"],
            "roles": final["table"]["roles"],
            "quests": [slot["result"] for slot in final["table"]["quest_track"]],
            "log_types": [event["type"] for event in final["table"]["log"]],
            "actions": actions,
            "tolerated_errors": sum(len(p.errors) for p in players),
            "reconnect_notices": sum(p.reconnect_notices for p in players),
            "instances": sorted({p.session["instance"] for p in players}),
            "room_stage": room["stage"] if room else None,
            "chat": room["chat"] if room else None,
            "maintenance_refusal": refusal,
        }
    finally:
        for player in players:
            if player.client is not None and player.client.connected:
                await player.client.disconnect()


async def try_handshake(url, auth):
    client = socketio.AsyncClient(reconnection=False)
    refusal = {}

    @client.on("connect_error")
    async def on_error(data):
        refusal["data"] = data

    try:
        await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
        return {"connected": True, "client": client}
    except socketio.exceptions.ConnectionError as err:
        data = refusal.get("data") or {}
        message = data.get("message") if isinstance(data, dict) else data
        try:
            parsed = json.loads(message)
        except (TypeError, ValueError):
            parsed = {"code": None, "message": message or str(err)}
        return {"connected": False, "code": parsed.get("code"), "message": parsed.get("message")}


async def run_refusals(scenario):
    results, kept = [], []
    for attempt in scenario["handshakes"]:
        outcome = await try_handshake(attempt["url"], attempt.get("auth"))
        if outcome.get("connected"):
            kept.append(outcome.pop("client"))
        results.append(outcome)
    for client in kept:
        await client.disconnect()
    return {"handshakes": results}


async def main():
    with open(sys.argv[1]) as file:
        scenario = json.load(file)
    if scenario.get("mode") == "refusals":
        result = await run_refusals(scenario)
    else:
        result = await run_game(scenario)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Failure as failure:
        print(f"FAILED {failure}", flush=True)
        sys.exit(1)
