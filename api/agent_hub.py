"""The agent WebSocket's server side: one hub per gateway process, one session per connection.

**Push path.** The hub reads the Agent Manager's change feed, one answer after another
(`feed.changes(cursor, timeout)`: on Ray, off the Agent Manager's stream to this process,
pom_actors/feed_stream.py) and fans each batch of frames out to the sockets of this process,
by agent login. So a change reaches a desktop in two socket writes — no Ray call per agent or
per event, whatever the number of desktops. The feed is read while the process has at least
one session. A `reset` answer (the Agent Manager restarted, or this process fell
more than the feed keeps behind) makes the hub read the views of all its agents in one call
and send each a `state` frame with `resync: true`; frames the view already includes (by their
feed `seq`) are not sent again.

**Commands.** Each client frame is parsed (`agent_protocol.parse`), rate-limited, and sent as
one awaited command (`desk(login, command, ...)`, batched per process: api/desk_batch.py); the resulting state changes come back
through the feed like any other. Only refusals are answered directly (`error` frames); a
connection is never closed for a bad frame. A `login` is answered with the agent's view and
the feed position it includes; the frames the feed brings for that agent while the answer is
on its way (the tick attaching it, say) are held and sent after the view (`joining`), not lost
for want of a session.

**Bounds.** A frame over `MAX_MESSAGE_BYTES` and frames beyond the rate limit get an error
frame; each session's outgoing queue holds `QUEUE_MAX` frames, and a desktop that does not
read them is disconnected (close code 1013) rather than let memory grow.

**Disconnect.** A desktop that goes away while its agent is `ready` is made `not_ready`
(reason `disconnected`) so that no call is put through to it; its session (login, state, job)
stays in the Agent Manager and is re-attached by the next `login` of the same agent.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from pom_actors.core.agents.attachment import AttachmentError
from pom_actors.core.agents.desk import DispositionError
from pom_actors.core.agents.state import IllegalAgentTransition
from pom_actors.core.tokens import Principal, Role, may_act_as
from pom_actors.heap import HeapKeeper
from pom_actors.services.agent_manager import UnknownAgent

from . import agent_protocol as P
from .errors import NoAnswer, Unavailable

log = logging.getLogger(__name__)
POLL_S = 10.0            # the long poll's own timeout (it returns earlier on any change)
JOIN_TIMEOUT_S = 5.0     # a new session waits this long at most for the feed's position
QUEUE_MAX = 1024         # frames waiting for one desktop before it is disconnected
RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0)


class AgentFeed(Protocol):
    """The Agent Manager as the hub uses it (`agent_client.RayAgentFeed` on Ray)."""
    async def desk(self, login: str, command: str, **kw: Any) -> dict: ...
    async def views(self, logins: list[str]) -> dict: ...
    async def changes(self, cursor: str | None, timeout_s: float) -> dict: ...


def seq_of(cursor: str | None) -> int:
    if not cursor:
        return -1
    tail = cursor.rpartition(":")[2]
    return int(tail) if tail.isdigit() else -1


def view_frame(view: dict, seq: int, event: str) -> dict[str, Any]:
    """A `state` frame with the agent as it stands (login, resync)."""
    return {"type": "state", "seq": seq, "agent": view["login"], "agent_id": view["id"], "state": view["state"],
            "previous": None, "event": event, "reason": view["reason"], "at": view["since"],
            "job_id": view["job_id"], "call_id": view["call_id"], "deferred": False,
            "pending": view["pending"], "wrap_until": view["wrap_until"], "resync": True}


class NotYourAgent(Exception):
    """A `login` as an agent the connection's token may not act as."""


class WsIdentity:
    """Who a WebSocket connection may act as (see `routers.agent_ws.ws_identity`): the
    token's holder; None only where no authentication runs (the hub's own unit tests)."""

    def __init__(self, principal: Principal | None = None):
        self.principal = principal

    async def agent_login(self, requested: str, feed: AgentFeed) -> str:
        """The agent login this connection acts as, given the one its `login` frame names: an
        agent token's own agent only (NotYourAgent otherwise, an unknown login included, so
        that it learns nothing of other agents); a supervisor's or an admin's, any."""
        if self.principal is None or self.principal.role != Role.AGENT:
            return requested
        found = (await feed.views([requested]))["agents"]
        if not found or not may_act_as(self.principal, found[0]["id"]):
            raise NotYourAgent(f"this token acts as agent id {self.principal.agent_id} only, not {requested!r}")
        return requested


class Session:
    """One desktop connection: its agent, the frames waiting to be written, its rate limit."""

    def __init__(self, ws: Any, identity: WsIdentity, queue_max: int = QUEUE_MAX):
        self.ws, self.identity = ws, identity
        self.login: str | None = None
        self.synced = -1                 # feed seq the last view sent includes
        self.state: str | None = None    # the agent's last state sent
        self.out: asyncio.Queue[str | None] = asyncio.Queue(queue_max)
        self.limiter = P.RateLimiter()
        self.closed = False
        self.close_code = 1000

    def send(self, frame: dict[str, Any]) -> None:
        if self.closed:
            return
        if frame.get("type") == "state":
            self.state = frame["state"]
        try:
            self.out.put_nowait(P.encode(frame))
        except asyncio.QueueFull:
            log.warning("desktop of %s does not read its frames: disconnected", self.login)
            self.close(1013)

    def pop_again(self, screen: dict | None, view: dict, seq: int) -> None:
        """After a login or resync view: the screen pop of the call the agent holds, again (one
        pushed just before an Agent Manager restart may never have reached the desktop)."""
        if screen is not None:
            self.send({**screen, "type": "call", "seq": seq, "agent": view["login"], "agent_id": view["id"],
                       "resent": True})

    def error(self, code: str, field: str | None, message: str, id: Any = None, state: str | None = None) -> None:
        self.send(P.ProtocolError(code, field, message, id, state).frame())

    def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed, self.close_code = True, code
            try:
                self.out.put_nowait(None)
            except asyncio.QueueFull:
                self.out.get_nowait()
                self.out.put_nowait(None)

    async def writer(self) -> None:
        try:
            while True:
                item = await self.out.get()
                if item is None:
                    break
                await self.ws.send_text(item)
            await self.ws.close(self.close_code)
        except Exception:     # the socket is gone: the reader sees the disconnect
            self.closed = True


class AgentHub:
    def __init__(self, feed: AgentFeed, poll_s: float = POLL_S):
        self.feed, self.poll_s = feed, poll_s
        self.sessions: dict[str, Session] = {}
        # Frames of agents whose login is on its way (login -> frames): the feed may bring
        # changes made after the login (the tick's attach) before the login's answer arrives.
        self.joining: dict[str, list[dict[str, Any]]] = {}
        self.connections = 0
        self.cursor: str | None = None
        self._task: asyncio.Task | None = None
        self._positioned = asyncio.Event()
        self.heap = HeapKeeper()
        self.stats = {"polls": 0, "frames": 0, "delivered": 0, "resets": 0, "poll_errors": 0, "messages": 0,
                      "refused": 0}

    # -- the subscription ----------------------------------------------------------------------
    def start(self) -> None:
        """Make sure the long poll runs."""
        if self._task is None or self._task.done():
            self._positioned.clear()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="agent-feed")

    async def positioned(self) -> None:
        """Wait (bounded) until the long poll knows the feed's position: a login's frames must
        come after it, or they could be missed."""
        self.start()
        try:
            await asyncio.wait_for(self._positioned.wait(), JOIN_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("the agent manager's feed did not answer within %s s", JOIN_TIMEOUT_S)

    def _stop_if_idle(self) -> None:
        if self.connections == 0 and self._task is not None:
            self._task.cancel()
            self._task, self.cursor = None, None

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                answer = await self.feed.changes(self.cursor, 0 if self.cursor is None else self.poll_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["poll_errors"] += 1
                log.info("agent feed poll failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
                continue
            failures = 0
            self.stats["polls"] += 1
            self.cursor = answer["cursor"]
            self._positioned.set()
            if answer["reset"]:
                self.stats["resets"] += 1
                await self._resync()
            self.deliver(answer["frames"])
            await asyncio.sleep(0)      # the sessions write what was delivered before a collection
            self.heap.settle()          # thousands of sessions out of every full collection

    def deliver(self, frames: list[dict[str, Any]]) -> None:
        """Each frame to its agent's session. The agents with a screen pop in the batch go
        first (each agent's frames kept in order): a batch may also hold hundreds of other
        agents' attachments (a job starting), whose writes would otherwise go ahead of it."""
        self.stats["frames"] += len(frames)
        popped = {f.get("agent") for f in frames if f.get("type") == "call"}
        if popped and len(frames) > len(popped):
            frames = sorted(frames, key=lambda f: f.get("agent") not in popped)
        for frame in frames:
            session = self.sessions.get(frame.get("agent"))
            if session is not None and frame["seq"] > session.synced:
                session.send(frame)
                self.stats["delivered"] += 1
            if frame.get("agent") in self.joining:        # a new connection's, or a replacing one's
                self.joining[frame["agent"]].append(frame)

    async def _resync(self) -> None:
        """After a reset: every agent of this process as it stands now."""
        if not self.sessions:
            return
        try:
            answer = await self.feed.views(list(self.sessions))
        except Exception as exc:
            log.warning("agent resync failed: %s", exc)
            return
        seq = seq_of(answer["cursor"])
        if answer["cursor"].partition(":")[0] != (self.cursor or "").partition(":")[0]:
            return          # yet another incarnation: the next poll resets again
        screens = answer.get("screens") or {}
        for view in answer["agents"]:
            session = self.sessions.get(view["login"])
            if session is not None:
                session.synced = seq
                session.send(view_frame(view, seq, "resync"))
                session.pop_again(screens.get(view["login"]), view, seq)

    # -- sessions ------------------------------------------------------------------------------
    def attach(self, session: Session, login: str, view: dict, cursor: str, screen: dict | None = None) -> None:
        old = self.sessions.get(login)
        if old is not None and old is not session:
            old.error(P.REPLACED, None, f"agent {login} logged in on another connection")
            old.login = None
            old.close(4000)
        self.detach(session)
        self.sessions[login] = session
        session.login = login
        session.synced = seq_of(cursor)
        session.send(view_frame(view, session.synced, "login"))
        session.pop_again(screen, view, session.synced)

    def detach(self, session: Session) -> None:
        if session.login is not None and self.sessions.get(session.login) is session:
            del self.sessions[session.login]

    async def serve(self, ws: Any, identity: WsIdentity) -> None:
        """Run one accepted connection until the desktop goes away."""
        session = Session(ws, identity)
        writer = asyncio.get_running_loop().create_task(session.writer())
        self.connections += 1
        try:
            self.start()
            while not session.closed:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self.receive(session, message.get("text") if message.get("text") is not None
                                   else message.get("bytes") or b"")
        finally:
            self.connections -= 1
            self.detach(session)
            if session.login is not None and session.state == "ready":
                try:
                    await self.feed.desk(session.login, "not_ready", reason="disconnected")
                except Exception as exc:
                    log.info("could not make %s not ready after its disconnect: %s", session.login, exc)
            session.close()
            writer.cancel()
            self._stop_if_idle()

    async def receive(self, session: Session, text: str | bytes) -> None:
        """One client frame: refused with an error frame, or carried out."""
        self.stats["messages"] += 1
        if not session.limiter.allow():
            self.stats["refused"] += 1
            session.error(P.RATE_LIMITED, None, f"at most {P.RATE_PER_S:g} messages a second "
                                                f"(bursts of {P.RATE_BURST})")
            return
        msg = P.parse(text)
        if isinstance(msg, P.ProtocolError):
            self.stats["refused"] += 1
            session.send(msg.frame())
            return
        try:
            await self.handle(session, msg)
        except NotYourAgent as exc:
            session.error(P.FORBIDDEN, "agent", str(exc), msg.id)
        except UnknownAgent as exc:
            session.error(P.UNKNOWN_AGENT, "agent", f"no agent {exc.args[0]!r}", msg.id)
        except IllegalAgentTransition as exc:
            session.error(P.ILLEGAL_TRANSITION, "type", f"an agent in state {exc.state} cannot {exc.event}",
                          msg.id, str(exc.state))
        except DispositionError as exc:
            session.error(P.REJECTED, exc.field, str(exc), msg.id)
        except (AttachmentError, ValueError) as exc:
            session.error(P.REJECTED, None, str(exc), msg.id)
        except Unavailable as exc:
            session.error(P.UNAVAILABLE, None, f"{exc}; try again", msg.id)
        except NoAnswer as exc:
            session.error(P.TIMEOUT, None, str(exc), msg.id)
        except Exception as exc:           # never a dropped connection: the desktop may retry
            log.exception("agent message %s failed", msg.type)
            session.error(P.INTERNAL, None, f"the message failed: {type(exc).__name__}", msg.id)

    async def handle(self, session: Session, msg: Any) -> None:
        kind = msg.type
        if kind == "ping":
            session.send({"type": "pong", "id": msg.id, "at": time.time()})
            return
        if kind == "login":
            login = await session.identity.agent_login(msg.agent, self.feed)
            if session.login is not None and session.login != login and session.state != "logged_out":
                session.error(P.ALREADY_LOGGED_IN, "agent", f"this connection is agent {session.login}; "
                                                            "log out first", msg.id)
                return
            await self.positioned()
            held = self.joining.setdefault(login, [])
            try:
                answer = await self.feed.desk(login, "login")
            finally:
                if self.joining.get(login) is held:
                    del self.joining[login]
            self.attach(session, login, answer["agent"], answer["cursor"], answer.get("screen"))
            for frame in held:               # what changed since the answer's view, in order
                if frame["seq"] > session.synced:
                    session.send(frame)
                    self.stats["delivered"] += 1
            return
        if session.login is None:
            session.error(P.NOT_LOGGED_IN, "type", f"log in before {kind}", msg.id)
            return
        kw: dict[str, Any] = {}
        if kind == "not_ready":
            kw["reason"] = msg.reason
        elif kind == "dispose":
            kw.update(code=msg.code, callback_at=msg.callback_at)
        elif kind in ("accept", "skip"):
            kw["card_id"] = msg.card_id
            if kind == "skip" and msg.code is not None:
                kw["code"] = msg.code
        await self.feed.desk(session.login, kind, **kw)

    def status(self) -> dict[str, Any]:
        return {"connections": self.connections, "agents": len(self.sessions), "cursor": self.cursor,
                "polling": self._task is not None and not self._task.done(), **self.stats}
