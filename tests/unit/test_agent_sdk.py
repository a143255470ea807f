"""The Agent SDK's WebSocket without Ray: the hub over an in-process Agent Manager service.
Every class of bad message gets an error frame naming the field, and the connection survives;
state changes, preview cards and screen pops arrive as frames; the published schema is current
and every frame matches it."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api import agent_protocol as P
from api import auth
from api.agent_hub import AgentHub, Session, WsIdentity
from api.routers import agent_ws
from pom_actors.core.agents.attachment import JobSpec
from tests.unit.test_agent_manager_service import Floor

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = json.loads((DOCS / "agent-sdk.schema.json").read_text())
pytestmark = pytest.mark.timeout(60)


class LocalFeed:
    """The Agent Manager reached in-process (`agent_client.RayAgentFeed` reaches it over Ray).
    The long poll is polled here, so the test thread may change the service through the portal."""

    def __init__(self, floor: Floor):
        self.floor = floor

    @property
    def svc(self):
        return self.floor.svc

    async def desk(self, login, command, **kw):
        return self.svc.desk(login, command, **kw)

    async def views(self, logins):
        return self.svc.views(logins)

    async def changes(self, cursor, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.svc.changes_since(cursor)
            if out["frames"] or out["reset"] or cursor is None or time.monotonic() >= deadline:
                return out
            await asyncio.sleep(0.002)


def validate(frame: dict) -> dict:
    jsonschema.validate(frame, {**SCHEMA, "$ref": f"#/$defs/server.{frame['type']}"})
    return frame


class Desk:
    """One desktop connection: send messages, read frames until one matches."""

    def __init__(self, ws):
        self.ws = ws

    def send(self, **msg) -> None:
        self.ws.send_text(json.dumps(msg))

    def next(self) -> dict:
        return validate(self.ws.receive_json())

    def until(self, **match) -> dict:
        for _ in range(50):
            frame = self.next()
            if all(frame.get(k) == v for k, v in match.items()):
                return frame
        raise AssertionError(f"no frame like {match}")


class Client(TestClient):
    """A test client that closes the desktops it opened before it stops."""

    desks: list

    def close_desks(self) -> None:
        for desk in self.desks:
            try:
                desk.ws.__exit__(None, None, None)
            except Exception:
                pass


@pytest.fixture
def world():
    floor = Floor(3)
    floor.svc.set_jobs([JobSpec(1, wrap_limit_s=30)])
    app = FastAPI()
    app.include_router(agent_ws.router, prefix="/api/v1", dependencies=[auth.allow(auth.AGENTS)])
    app.state.token_cache = auth.TokenCache()
    hub = app.state.agent_hub = AgentHub(LocalFeed(floor), poll_s=1.0)
    with Client(app) as client:
        client.desks = []
        client.token = token_of(auth.for_tests(app, "supervisor"))
        try:
            yield floor, client, hub
        finally:
            client.close_desks()


def token_of(headers: dict) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def connect(client, token: str | None = None) -> Desk:
    desk = Desk(client.websocket_connect(f"/api/v1/agents/ws?token={token or client.token}").__enter__())
    client.desks.append(desk)
    return desk


def attached_desk(client, floor) -> Desk:
    """Agent a0's desktop, logged in, ready and attached to job 1 (written by the tick)."""
    desk = connect(client)
    desk.send(type="login", agent="a0")
    desk.send(type="ready")
    desk.until(event="ready")
    client.portal.call(floor.svc.tick)
    desk.until(event="attach")
    return desk


def test_log_in_go_ready_and_get_attached_then_a_supervisor_logs_the_agent_off(world):
    floor, client, hub = world
    desk = connect(client)
    desk.send(type="login", agent="a0")
    first = desk.next()
    assert (first["type"], first["agent"], first["state"], first["event"], first["resync"]) == (
        "state", "a0", "not_ready", "login", True)
    desk.send(type="ready")
    ready = desk.until(event="ready")
    assert ready["previous"] == "not_ready" and ready["state"] == "ready" and ready["at"]
    client.portal.call(floor.svc.tick)                    # the Agent Manager's tick attaches it
    attached = desk.until(event="attach")
    assert attached["job_id"] == 1
    client.portal.call(floor.svc.force_logoff, floor.ids[0])
    off = desk.until(event="force_logoff")
    assert off["state"] == "logged_out" and off["reason"] == "supervisor"
    assert hub.status()["agents"] == 1 and hub.status()["polling"]


class SlowLogin(LocalFeed):
    """A login whose answer is late: the tick attaches the agent and the hub's long poll brings
    that change before the answer does (a loaded machine, the Agent Manager's write wait)."""

    async def desk(self, login, command, **kw):
        answer = self.svc.desk(login, command, **kw)
        if command == "login":
            self.svc.tick()
            await asyncio.sleep(0.2)                 # several polls of the feed meanwhile
        return answer


def test_changes_made_while_a_login_is_answered_reach_the_desktop(world):
    floor, client, hub = world
    hub.feed = SlowLogin(floor)
    desk = connect(client)
    desk.send(type="login", agent="a0")
    first = desk.next()
    assert (first["event"], first["job_id"]) == ("login", None)      # the view as the login left it
    attached = desk.next()                                          # then what changed since
    assert (attached["event"], attached["job_id"]) == ("attach", 1) and attached["seq"] > first["seq"]
    assert hub.joining == {}


BAD = [
    ("{not json", P.NOT_JSON, None),
    ("[1, 2]", P.NOT_OBJECT, None),
    ('"login"', P.NOT_OBJECT, None),
    ("{}", P.MISSING_FIELD, "type"),
    ('{"type": "teleport"}', P.UNKNOWN_TYPE, "type"),
    ('{"type": 42}', P.UNKNOWN_TYPE, "type"),
    ('{"type": "not_ready"}', P.MISSING_FIELD, "reason"),
    ('{"type": "not_ready", "reason": "a b"}', P.INVALID_FIELD, "reason"),
    ('{"type": "not_ready", "reason": 5}', P.INVALID_FIELD, "reason"),
    ('{"type": "ready", "mood": "good"}', P.UNKNOWN_FIELD, "mood"),
    ('{"type": "dispose", "code": "Sale!"}', P.INVALID_FIELD, "code"),
    ('{"type": "dispose", "code": "sale", "callback_at": "tomorrow"}', P.INVALID_FIELD, "callback_at"),
    ('{"type": "accept"}', P.MISSING_FIELD, "card_id"),
    ('{"type": "login", "agent": ""}', P.INVALID_FIELD, "agent"),
    ('{"type": "login", "agent": "a\\u0000b"}', P.INVALID_FIELD, "agent"),
    ('{"type": "ping", "id": {"x": 1}}', P.INVALID_FIELD, "id"),
    ("x" * (P.MAX_MESSAGE_BYTES + 1), P.TOO_LARGE, None),
]


@pytest.mark.parametrize("text, code, field", BAD, ids=[c + "-" + str(f) for _, c, f in BAD])
def test_a_bad_message_gets_an_error_frame_naming_the_field(text, code, field):
    got = P.parse(text)
    assert isinstance(got, P.ProtocolError) and (got.code, got.field) == (code, field)
    validate(got.frame())


def test_bad_messages_over_the_socket_never_cost_the_connection(world):
    floor, client, _ = world
    desk = connect(client)
    desk.send(type="ready", id="r1")
    err = desk.next()
    assert (err["type"], err["code"], err["field"], err["id"]) == ("error", "not_logged_in", "type", "r1")
    for text, code, field in BAD:
        desk.ws.send_text(text)
        err = desk.next()
        assert (err["type"], err["code"], err["field"]) == ("error", code, field), text
    desk.ws.send_bytes(b'{"type": "ping", "id": 7}')       # a binary frame of JSON is fine too
    assert desk.next() == {"type": "pong", "id": 7, "at": pytest.approx(time.time(), abs=5)}
    desk.send(type="login", agent="nobody", id=1)
    err = desk.next()
    assert (err["code"], err["field"], err["id"]) == ("unknown_agent", "agent", 1)
    desk.send(type="login", agent="a1")
    desk.until(event="login")
    desk.send(type="dispose", code="sale", id="d")
    err = desk.until(type="error")
    assert (err["code"], err["field"], err["state"], err["id"]) == ("illegal_transition", "type", "not_ready", "d")
    desk.send(type="accept", card_id="card-9")
    err = desk.until(type="error")
    assert (err["code"], err["field"]) == ("rejected", "card_id")
    desk.send(type="login", agent="a2")
    assert desk.until(type="error")["code"] == "already_logged_in"
    desk.send(type="ping", id="alive")
    assert desk.until(type="pong")["id"] == "alive"


def test_the_rate_limit_refuses_a_flood_and_the_connection_survives(world):
    _, client, _ = world
    desk = connect(client)
    for i in range(P.RATE_BURST + 20):
        desk.send(type="ping", id=i)
    got = [desk.next() for _ in range(P.RATE_BURST + 20)]
    limited = [f for f in got if f["type"] == "error"]
    assert limited and all(f["code"] == "rate_limited" for f in limited)
    assert sum(f["type"] == "pong" for f in got) >= P.RATE_BURST
    time.sleep(0.2)                                       # tokens come back
    desk.send(type="ping", id="later")
    assert desk.next()["id"] == "later"


def test_rate_limiter_refills():
    now = [0.0]
    r = P.RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [r.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert r.allow() and not r.allow()


def test_preview_card_and_screen_pop_reach_the_desktop_and_dispose_with_a_callback(world):
    floor, client, _ = world
    desk = attached_desk(client, floor)
    agent = client.portal.call(floor.svc.preview, 1, "card-1", {"contact": {"first_name": "Ann"}}, 30.0)
    assert agent == floor.ids[0]
    card = desk.until(type="preview")
    assert card["card_id"] == "card-1" and card["contact"] == {"first_name": "Ann"} and card["timeout_s"] == 30
    desk.send(type="accept", card_id="card-1")
    desk.until(event="accept")
    screen = {"job_id": 1, "contact": {"first_name": "Ann"}, "script": {"text": "Hello Ann"},
              "codes": ["answer_human", "sale"]}
    client.portal.call(lambda: floor.svc.connect("card-1", screen))
    pop = desk.until(type="call")
    assert pop["script"] == {"text": "Hello Ann"} and pop["codes"] == ["answer_human", "sale"]
    desk.until(event="connect")
    client.portal.call(floor.svc.hangup, "card-1")
    desk.until(event="hangup")
    desk.send(type="dispose", code="sale", callback_at="1999-01-01T00:00:00Z")
    err = desk.until(type="error")
    assert (err["code"], err["field"]) == ("rejected", "callback_at")
    desk.send(type="dispose", code="refund")
    assert desk.until(type="error")["field"] == "code"
    desk.send(type="dispose", code="sale", callback_at=(floor.clock.t + timedelta(hours=2)).isoformat())
    done = desk.until(event="dispose")
    assert done["state"] == "ready" and done["reason"] == "sale"
    client.portal.call(floor.svc.flush)                   # handed out once written
    taken = client.portal.call(floor.svc.take_dispositions, 1)
    assert taken[0]["code"] == "sale" and taken[0]["callback_at"] is not None


def test_a_second_connection_of_the_same_agent_replaces_the_first(world):
    floor, client, hub = world
    first = connect(client)
    first.send(type="login", agent="a0")
    first.until(event="login")
    second = connect(client)
    second.send(type="login", agent="a0")
    assert second.until(event="login")["resync"]
    err = first.until(type="error")
    assert err["code"] == "session_replaced"
    assert hub.sessions["a0"] is not None and len(hub.sessions) == 1


def test_an_agent_token_logs_in_only_as_its_own_agent(world):
    floor, client, hub = world
    desk = connect(client, token_of(auth.for_tests(client.app, "agent", agent_id=floor.ids[0])))
    for other in ("a1", "nobody"):                        # another agent, or one that does not exist
        desk.send(type="login", agent=other, id=other)
        err = desk.until(type="error")
        assert (err["code"], err["field"], err["id"]) == ("forbidden", "agent", other)
    assert floor.svc.view(floor.ids[1])["state"] == "logged_out" and not hub.sessions
    desk.send(type="login", agent="a0")                   # the connection survived: its own agent
    assert desk.until(event="login")["agent"] == "a0"


def test_an_agent_token_without_its_agent_acts_as_none(world):
    floor, client, hub = world
    desk = connect(client, token_of(auth.for_tests(client.app, "agent")))
    desk.send(type="login", agent="a0")
    assert desk.until(type="error")["code"] == "forbidden"


def test_a_token_of_a_role_without_desktops_is_refused(world):
    floor, client, hub = world
    with pytest.raises(WebSocketDisconnect) as refused:
        connect(client, token_of(auth.for_tests(client.app, "integration"))).next()
    assert refused.value.code == 1008


def test_a_desktop_that_goes_away_while_ready_is_made_not_ready(world):
    floor, client, hub = world
    desk = connect(client)
    desk.send(type="login", agent="a0")
    desk.send(type="ready")
    desk.until(event="ready")
    client.desks.remove(desk)
    desk.ws.__exit__(None, None, None)
    for _ in range(200):
        if floor.svc.view(floor.ids[0])["state"] == "not_ready":
            break
        time.sleep(0.01)
    view = floor.svc.view(floor.ids[0])
    assert view["state"] == "not_ready" and view["reason"] == "disconnected"


def test_a_restarted_agent_manager_resyncs_every_desktop(world):
    floor, client, hub = world
    desk = connect(client)
    desk.send(type="login", agent="a0")
    desk.send(type="ready")
    desk.until(event="ready")
    client.portal.call(floor.svc.tick)                    # attached and written
    desk.until(event="attach")
    client.portal.call(floor.restart)                     # a new incarnation, rebuilt from the store
    again = desk.until(event="resync")
    assert again["state"] == "ready" and again["job_id"] == 1 and again["resync"]
    desk.send(type="not_ready", reason="break")           # commands work on the new incarnation
    assert desk.until(event="not_ready")["reason"] == "break"
    assert hub.stats["resets"] == 1


def test_the_screen_pop_of_a_call_held_is_sent_again_after_a_restart_and_a_new_login(world):
    """A pop pushed just before the Agent Manager died may never have reached the desktop: the
    resync (and a login that re-attaches) sends the call's screen again, marked `resent`."""
    floor, client, hub = world
    desk = attached_desk(client, floor)
    screen = {"job_id": 1, "contact": {"first_name": "Ann"}, "script": {"text": "Hello Ann"}, "codes": ["sale"]}
    client.portal.call(lambda: floor.svc.reserve_many(1, ["c1"], {"c1": screen}))
    assert not desk.until(type="call").get("resent")
    client.portal.call(floor.svc.tick)                    # written
    client.portal.call(floor.restart)
    assert desk.until(event="resync")["state"] == "reserved"
    again = desk.until(type="call")
    assert again["resent"] and again["call_id"] == "c1" and again["script"] == {"text": "Hello Ann"}
    other = connect(client)                               # the desktop reconnects
    other.send(type="login", agent="a0")
    assert other.until(event="login")["call_id"] == "c1"
    assert other.until(type="call")["codes"] == ["sale"]


def test_a_slow_desktop_is_disconnected_not_buffered_for_ever():
    class Stuck:
        async def send_text(self, text):
            await asyncio.sleep(3600)

    async def scenario():
        s = Session(Stuck(), WsIdentity(), queue_max=3)
        for i in range(5):
            s.send({"type": "pong", "id": i, "at": 0})
        assert s.closed and s.close_code == 1013

    asyncio.run(scenario())


def test_the_published_schema_is_current_and_valid():
    assert SCHEMA == P.protocol_json_schema()
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate({"type": "dispose", "code": "sale", "callback_at": "2026-11-25T18:00:00Z"}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "not_ready"}, SCHEMA)


def test_a_screen_pop_is_written_ahead_of_other_agents_frames_in_its_batch():
    """A batch from the feed with hundreds of attachments (a job starting) and a screen pop:
    the agent with the pop is written first, its own frames in their order."""
    written: list[tuple[str, str]] = []

    class Recorded:
        def __init__(self, login):
            self.login = login

        async def send_text(self, text):
            frame = json.loads(text)
            written.append((self.login, frame.get("event") or frame["type"]))

    async def scenario():
        hub = AgentHub(feed=None)
        for login in ("a", "b", "c"):
            hub.sessions[login] = s = Session(Recorded(login), WsIdentity())
            s.login = login
            asyncio.get_running_loop().create_task(s.writer())
        await asyncio.sleep(0)                  # every writer waiting for its first frame
        frames = [{"type": "state", "agent": "b", "event": "attach"}, {"type": "state", "agent": "a", "event": "reserve"},
                  {"type": "state", "agent": "c", "event": "attach"}, {"type": "call", "agent": "a"},
                  {"type": "state", "agent": "b", "event": "nail"}]
        hub.deliver([{**f, "seq": i, "state": "ready"} for i, f in enumerate(frames)])
        await asyncio.sleep(0.05)
        assert written[:2] == [("a", "reserve"), ("a", "call")]
        assert [e for a, e in written if a == "b"] == ["attach", "nail"] and len(written) == 5

    asyncio.run(scenario())
