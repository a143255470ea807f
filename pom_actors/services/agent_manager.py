"""Everything the AgentManager does, as a plain class (the actor in `pom_actors/agent_manager.py`
only creates it, runs its tick and answers for it).

It holds every agent in memory (`core.agents.state.Agent`, slotted: 10,000 agents take a few
MB), applies the agents' and supervisors' commands through the state machine, attaches agents
to the running agent-based jobs (`core.agents.attachment.plan`), shares the license pools
(`core.agents.licenses.allocate`), reserves an agent for an answered call of a job (the hot path
of the 2-second connect rule: one dict lookup and one transition per call) and gives the pacer
a job's snapshot. Every transition is logged in memory and written to PostgreSQL once per tick
(`flush`: one COPY and one UPDATE), never per transition. After a restart `rebuild()` reads
every agent's latest transition and attachment back.

Desktops are told through a **change feed** (`changes(cursor)`, services/agent_feed.py): every
transition, attach, move, preview offer and screen pop, in order, long-polled by each gateway
process; a rebuild starts a new feed incarnation, whose readers reset.

Collaborators (passed in, faked by the unit tests): `open_store()` gives a
`store.agents.AgentStore`; a clock. Methods are synchronous (but `changes` and `run`): the actor
runs them one at a time on its event loop, so no lock is needed.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..config import Settings
from ..core.agents.attachment import (DEFAULT_WRAP_LIMIT_S, AttachmentError, JobSpec, Seat, check_move, eligible,
                                      plan, with_limits)
from ..core.agents import preview as cards
from ..core.agents.desk import DispositionError, check_disposition
from ..core.agents.disposal import DISPOSE_WAIT_S
from ..core.agents.nailing import NAIL, UNNAIL, Nails, Session, last_sessions
from ..core.agents.licenses import POOLS, Allocation, Demand, LicensePools, allocate
from ..core.agents.ports import PortShares, Report
from ..core.agents.snapshot import Roster
from ..core.agents.state import (BUSY, Agent, AgentEvent, AgentState, Transition, WrapTimers, apply, note)
from ..core.clock import Clock
from ..core.histogram import Histogram
from ..core.pacing.snapshot import PacerSnapshot
from ..feed_stream import FeedServer
from ..heap import HeapKeeper
from ..store.agents import AgentStore
from .agent_feed import ChangeFeed

log = logging.getLogger(__name__)
S, E = AgentState, AgentEvent
# A reservation never connected nor released is released after this many REAL seconds: longer
# than a Campaign Manager's failover (POM_PING_TIMEOUT_S + POM_LEASE_TTL_S), so that the agent of
# a call its manager bridged but died before settling is still held when the gateway's
# completion, naming the agent, reaches the manager's successor (`_hangup_held`).
RESERVE_TIMEOUT_S = 30.0
WRITE_LINGER_S = 0.01         # a reply that waits for its write waits this long for others first
# A disposition handed out and still not in the ledger after this many REAL seconds (its taker
# stopped before writing it) is handed out again (`reoffer`); it is looked for this often too.
REOFFER_S = 60.0
# An accepted preview card's agent is held while its call is placed: this many business seconds
# of ringing, on top of the reservation's real-time allowance (the manager's round, the dispatch).
PREVIEW_DIAL_S = 180.0
# Attachment moves made per tick, the rest at the next ticks: each move is two frames to a
# desktop (attach, nail), and a job starting with 10,000 ready agents made 20,000 at once, ahead
# of its first screen pops (they reached the desktops 2 s late: docs/benchmarks.md, "Agents");
# at 200 a tick, the screen pops behind each tick's 400 frames were still the slowest of a run.
MOVES_PER_TICK = 100
_UNSET = object()


class AgentLegs(Protocol):
    """The media gateways as they hold the agents' nailed sessions (media_gateway.RayAgentLegs)."""

    async def hold(self, sessions: dict[str, int], version: int) -> dict[str, dict]: ...


class UnknownAgent(KeyError):
    """No agent with that id."""


class UnknownCall(KeyError):
    """No agent holds that call."""


class AgentManagerService:
    def __init__(self, settings: Settings, *, open_store: Callable[[], AgentStore], clock: Clock,
                 pools: LicensePools | None = None, reserve_timeout_s: float = RESERVE_TIMEOUT_S,
                 legs: AgentLegs | None = None, feed_host: str = "127.0.0.1"):
        self.settings, self.open_store, self.clock, self.legs = settings, open_store, clock, legs
        # the change feed streamed to the gateways (`changes` on a socket: pom_actors/feed_stream.py)
        self.streams = FeedServer(self.changes, feed_host, settings.agent_feed_port)
        self.store = open_store()
        self.writer: AgentStore | None = None               # `write`'s own connection (a thread's)
        self.disposer: AgentStore | None = None             # `dispose_orphans`' own connection
        self.linger_s = WRITE_LINGER_S
        self.pools = pools or LicensePools()
        self.reserve_timeout = timedelta(seconds=reserve_timeout_s / clock.real_seconds(1.0))
        self._namesets: dict[frozenset[str], frozenset[str]] = {}
        self.stats = {"flushes": 0, "written": 0, "reserved": 0, "no_agent": 0, "moves": 0,
                      "wrap_timeouts": 0, "reservation_timeouts": 0, "flush_errors": 0, "feed_polls": 0,
                      "nails": 0, "reuses": 0, "unnails": 0, "orphans_applied": 0, "orphans_refused": 0,
                      "reoffered": 0}
        # Real seconds from an answered call's reservation to its connect (preview cards, whose
        # agent is reserved while the contact is shown, are not counted): cumulative.
        self.connect_latency = Histogram()
        self.reoffered_at = time.monotonic()
        self.ended: set[int] = set()                       # jobs stopped since the last `reoffer`
        self._reset()

    def _reset(self) -> None:
        """Forget every agent and job (what a restart loses; `rebuild` reads it back)."""
        self.agents: dict[int, Agent] = {}
        self.logins: dict[str, int] = {}
        self.jobs: dict[int, JobSpec] = {}                 # running agent-based jobs
        self.notifications: dict[int, Demand] = {}         # running agent-less jobs (ports)
        self.port_shares = PortShares(time.monotonic())    # their managers' ports in use and caps
        self.jobs_known = False                            # told the running jobs since start
        self.members: dict[int, set[int]] = {}             # job -> attached agents
        self.roster = Roster()                             # job -> its agents the pacers count
        self.calls: dict[str, int] = {}                    # call -> agent reserved for / on / wrapping it
        self.reservations: dict[int, datetime] = {}        # agent -> when its reservation lapses
        self.reserved_at: dict[str, float] = {}            # call -> time.monotonic() of its reserve
        self.timers = WrapTimers()
        self.pins: dict[int, int] = {}                     # agent -> job a supervisor moved it to
        self.pending_moves: dict[int, int | None] = {}     # agent -> job it joins when its call ends
        self.allocation: Allocation = allocate(self.pools, [])
        self.nails = Nails(self.settings.nail_grace_s)     # agent -> its nailed session
        self.legs_version = 0                              # bumped when the sessions to hold change
        self.log: list[Transition] = []                    # transitions not yet written
        self.dirty: set[int] = set()                       # agents whose row is not yet written
        self.recorded = self.durable = 0                   # transitions logged / known written
        self._round: asyncio.Future | None = None          # the write in progress (`write`)
        self.rebalance_due = False
        self.moves_left: deque = deque()                  # the last plan's moves not made yet
        self.overrides: dict[int, dict[str, Any]] = {}    # job -> limits a supervisor set (set_job)
        self.offers: dict[str, cards.Card] = {}            # preview card -> card (shown or dialled)
        self.answers: dict[tuple[int, str | None], dict[str, dict]] = {}   # (job, owner) -> card -> answer not yet taken
        # call -> its screen pop (the `call` frame), from the pop until its agent is done with it:
        # written with the agent's row, sent again at a desktop's resync or re-attach
        self.screens: dict[str, dict[str, Any]] = {}
        # the agents' dispositions: `disposing` until written (kept in agent_dispositions with
        # their transition, store.agents `write`), then `dispositions` until taken by their caller
        self.disposing: list[dict[str, Any]] = []
        self.dispositions: list[dict[str, Any]] = []
        self.talked: dict[int, float] = {}                 # agent -> seconds on its last call (hangup)
        old, self.feed = getattr(self, "feed", None), ChangeFeed(self._login_of)   # a new incarnation
        if old is not None:
            old.notify()                                   # its long polls return and reset

    # -- agents ---------------------------------------------------------------------------------
    def _names(self, names: Iterable[str]) -> frozenset[str]:
        key = frozenset(names)
        return self._namesets.setdefault(key, key)    # one frozenset per distinct skill (or group) set

    def _agent(self, agent_id: int) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise UnknownAgent(agent_id) from None

    def add_agent(self, login: str, name: str = "", skills: Iterable[str] = (), groups: Iterable[str] = ()) -> int:
        """Create agent `login` (or replace the name, skills and groups of an existing one; a
        deleted login is created again, with its history); its id."""
        skills, groups = list(skills), list(groups)
        agent_id = self.store.create_agent(login, name, skills, groups)
        agent = self.agents.get(agent_id)
        if agent is None:
            self.agents[agent_id] = Agent(agent_id, login, self._names(skills), groups=self._names(groups), name=name)
            self.logins[login] = agent_id
        else:
            self._change(agent, name, skills, groups)
        return agent_id

    def update_agent(self, login: str, *, name: Any = _UNSET, skills: Any = _UNSET, groups: Any = _UNSET) -> dict:
        """Change the name, skills or groups of agent `login` (those given). New skills and
        groups take effect at the next rebalance: an agent no longer eligible for its job
        leaves it (after its call, if it is on one), and a supervisor's pin to such a job goes."""
        agent = self._agent(self.agent_id(login))
        given = {k: (list(v) if k != "name" else v) for k, v in
                 (("name", name), ("skills", skills), ("groups", groups)) if v is not _UNSET}
        self.store.update_agent(agent.id, **given)
        self._change(agent, given.get("name", agent.name), given.get("skills", agent.skills),
                     given.get("groups", agent.groups))
        return self.view(agent.id)

    def _change(self, agent: Agent, name: str, skills: Iterable[str], groups: Iterable[str]) -> None:
        agent.name = name
        skills, groups = self._names(skills), self._names(groups)
        if (skills, groups) == (agent.skills, agent.groups):
            return
        agent.skills, agent.groups = skills, groups
        pinned = self.jobs.get(self.pins.get(agent.id))
        if pinned is not None and not eligible(skills, groups, pinned):
            self.pins.pop(agent.id)
        self.rebalance_due = True

    def delete_agent(self, login: str) -> dict[str, Any]:
        """Delete agent `login`, logged out (AttachmentError otherwise): its row is marked
        deleted (its transitions and attempts keep naming it), the tokens acting as it are
        revoked, and it is forgotten here, so that its login is refused. `{"id", "login",
        "revoked_tokens"}`."""
        agent = self._agent(self.agent_id(login))
        if agent.state != S.LOGGED_OUT:
            raise AttachmentError(f"agent {login!r} is {agent.state}: log it off first (force-logoff)")
        revoked = self.store.delete_agent(agent.id)
        del self.agents[agent.id], self.logins[login]
        self.pins.pop(agent.id, None)
        self.pending_moves.pop(agent.id, None)
        self.talked.pop(agent.id, None)
        return {"id": agent.id, "login": login, "deleted": True, "revoked_tokens": revoked}

    def agent_id(self, login: str) -> int:
        try:
            return self.logins[login]
        except KeyError:
            raise UnknownAgent(login) from None

    def view(self, agent_id: int) -> dict[str, Any]:
        """One agent as the API shows it."""
        a = self._agent(agent_id)
        return {"id": a.id, "login": a.login, "name": a.name, "skills": sorted(a.skills), "groups": sorted(a.groups),
                "state": str(a.state),
                "since": a.since, "reason": a.reason, "job_id": a.job_id, "call_id": a.call_id,
                "pending": None if a.pending is None else str(a.pending), "wrap_until": a.wrap_until,
                "pinned": a.id in self.pins, "moving": a.id in self.pending_moves,
                "moving_to": self.pending_moves.get(a.id)}

    def list_agents(self, job_id: int | None = None, state: str | None = None, skill: str | None = None,
                    after: int = 0, limit: int | None = None, group: str | None = None) -> list[dict[str, Any]]:
        """A page of agents by id (those above `after`, at most `limit`): of a job, in a state,
        with a skill, in a group if given. A page, not the floor: the views of 10,000 agents are
        megabytes."""
        ids = sorted(self.members.get(job_id, ())) if job_id is not None else sorted(self.agents)
        out: list[dict[str, Any]] = []
        for i in ids[bisect.bisect_right(ids, after):]:
            agent = self.agents[i]
            if ((state is None or agent.state == state) and (skill is None or skill in agent.skills)
                    and (group is None or group in agent.groups)):
                out.append(self.view(i))
                if len(out) == limit:
                    break
        return out

    # -- the one place a state changes -------------------------------------------------------
    def _do(self, agent: Agent, event: AgentEvent, now: datetime | None = None, **kw) -> list[Transition]:
        now = now or self.clock.now()
        before, call = agent.state, agent.call_id
        out = apply(agent, event, now, **kw)            # raises before changing anything
        after = agent.state
        self.roster.place(agent)                        # a new state or `since` (else a no-op)
        if before != after:
            if before == S.RESERVED:
                self.reservations.pop(agent.id, None)
                reserved = self.reserved_at.pop(call, None)
                if after == S.ON_CALL and reserved is not None and call not in self.offers:
                    self.connect_latency.observe(time.monotonic() - reserved)
            if after == S.RESERVED:
                self.reservations[agent.id] = now + self.reserve_timeout
                self.reserved_at[agent.call_id] = time.monotonic()
                self.calls[agent.call_id] = agent.id
            if after == S.WRAP_UP and agent.wrap_until is not None:
                self.timers.schedule(agent.id, agent.wrap_until)
            if call is not None and agent.call_id is None:
                self.calls.pop(call, None)
                self.screens.pop(call, None)
        self._record(out)
        self.dirty.add(agent.id)
        if before == S.LOGGED_OUT and after != S.LOGGED_OUT:
            self.rebalance_due = True                   # a new agent to attach
        if after == S.LOGGED_OUT:
            self.pins.pop(agent.id, None)
            self.pending_moves.pop(agent.id, None)
            if agent.job_id is not None:
                self._attach(agent, None, now, "detach", "logged out")
            self._unnail(self.nails.release(agent.id), now)
        elif after not in BUSY and agent.id in self.pending_moves:
            self._attach(agent, self.pending_moves.pop(agent.id), now, "move", "after the call")
        return out

    def _attach(self, agent: Agent, job_id: int | None, now: datetime, event: str, reason: str | None = None) -> None:
        old = agent.job_id
        if old == job_id:
            return
        if old is not None:
            self.members.get(old, set()).discard(agent.id)
        agent.job_id = job_id
        self.roster.place(agent)
        if job_id is not None:
            self.members.setdefault(job_id, set()).add(agent.id)
        if event == "move" and old is None:
            event = "attach"
        elif event == "move" and job_id is None:
            event = "detach"
        self._record([note(agent, now, event, reason if reason is not None else (f"from job {old}" if old else None))])
        self.dirty.add(agent.id)
        self.stats["moves"] += 1
        if job_id is None:
            self.nails.detach(agent.id, now)               # released after the grace, unless reused
        else:
            self._nail(agent, job_id, now)

    # -- nailed sessions (core/agents/nailing.py) -------------------------------------------------
    def _nail(self, agent: Agent, job_id: int, now: datetime) -> None:
        """The agent serves `job_id` from its nailed session: a new one, or the one it kept."""
        what, session = self.nails.attach(agent.id, job_id)
        if what is not None:
            self._record([note(agent, now, what, session.id)])
            self.legs_version += what == NAIL
            self.stats["nails" if what == NAIL else "reuses"] += 1

    def _unnail(self, session: Session | None, now: datetime) -> None:
        if session is not None:
            self._record([note(self.agents[session.agent_id], now, UNNAIL, session.id)])
            self.legs_version += 1
            self.stats["unnails"] += 1

    async def hold_legs(self) -> dict[str, dict]:
        """Give the gateways the sessions to hold (those that do not hold this list yet)."""
        if self.legs is None:
            return {}
        return await self.legs.hold(self.nails.legs(), self.legs_version)

    def sessions(self) -> dict[str, dict[str, Any]]:
        """The nailed sessions by agent login: id, job (None: in its grace) and release time."""
        return {self.agents[a].login: {"session_id": s.id, "job_id": s.job_id, "release_at": s.release_at}
                for a, s in sorted(self.nails.sessions.items())}

    # -- agent commands ---------------------------------------------------------------------
    def login(self, agent_id: int) -> dict:
        self._do(self._agent(agent_id), E.LOGIN)
        return self.view(agent_id)

    def logout(self, agent_id: int) -> dict:
        self._withdraw(self._agent(agent_id), "logged out")
        self._do(self._agent(agent_id), E.LOGOUT)
        return self.view(agent_id)

    def set_ready(self, agent_id: int) -> dict:
        self._do(self._agent(agent_id), E.READY)
        return self.view(agent_id)

    def not_ready(self, agent_id: int, reason: str) -> dict:
        if reason:
            self._withdraw(self._agent(agent_id), reason)
        self._do(self._agent(agent_id), E.NOT_READY, reason=reason)
        return self.view(agent_id)

    def dispose(self, agent_id: int, code: str, callback_at: datetime | None = None) -> dict:
        """The agent's disposition of its call: ends the wrap-up. The code must be one the
        call's screen offered (any code if it had none); a call-back time asks for the
        contact to be called again then. The disposition waits in `take_dispositions` for
        whoever settles the call (DispositionError names the field at fault), with the
        agent's own timing of it: `talk_s` (connect to hangup) and `wrap_s` (hangup to now).
        It is handed out once written (with its transition, in the same flush: what the
        desktop is answered after), and kept in PostgreSQL until a manager has put it in the
        ledger: a restart between the two loses none (`rebuild`)."""
        agent = self._agent(agent_id)
        now = self.clock.now()
        call, job = agent.call_id, agent.call_job if agent.call_job is not None else agent.job_id
        if agent.state == S.WRAP_UP:
            screen = self.screens.get(call) or {}
            check_disposition(code, list(screen.get("codes") or []) or None, callback_at, now)
        wrapped = (now - agent.since).total_seconds() if agent.since is not None else None
        self._do(agent, E.DISPOSE, now, reason=code)      # IllegalAgentTransition unless in wrap-up
        self.disposing.append({"agent_id": agent_id, "call_id": call, "job_id": job, "code": code,
                                  "callback_at": callback_at, "at": now, "talk_s": self.talked.pop(agent_id, None),
                                  "wrap_s": None if wrapped is None else max(0.0, wrapped)})
        return self.view(agent_id)

    def take_dispositions(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """The agents' dispositions written and not yet taken (of one job, or all), oldest
        first. Taken, they stay in PostgreSQL until the taker has written them into the ledger
        (store/dispositions.py deletes them there): a restarted Agent Manager hands them out
        again, and the second writing finds them written. Those of a job known to have stopped
        are not handed out: they are the Agent Manager's to write (`orphans`); a manager of
        that job still cycling could take one after the stop's `reoffer` and stop before
        writing it."""
        if self.jobs_known and job_id is not None and job_id not in self.jobs:
            return []
        taken = [d for d in self.dispositions if job_id is None or d["job_id"] == job_id]
        self.dispositions = [d for d in self.dispositions if not (job_id is None or d["job_id"] == job_id)]
        return taken

    def orphans(self) -> dict[int, list[dict[str, Any]]]:
        """Take the dispositions no Campaign Manager will take (by job): those of a job that is
        no longer a running agent-based job (completed, stopped, paused while its agent wrapped
        up the call) — the Agent Manager writes them itself (`dispose_orphans`). Nothing before
        the running jobs are known (after a restart); a disposition of no job is dropped."""
        if not self.jobs_known:
            return {}
        out: dict[int, list[dict[str, Any]]] = {}
        kept = []
        for d in self.dispositions:
            if d["job_id"] in self.jobs:
                kept.append(d)
            elif d["job_id"] is not None:
                out.setdefault(d["job_id"], []).append(d)
        self.dispositions = kept
        return out

    async def dispose_orphans(self) -> int:
        """Write the `orphans` into the ledger as their managers would have (store.agents
        `dispose`), in a thread on a connection of its own. One whose attempt is still in
        flight is tried again at a later tick (`DISPOSE_WAIT_S` of business time at most);
        all are kept while the database is unreachable. Returns how many were applied."""
        orphans = self.orphans()
        if not orphans:
            return 0
        try:
            done = await asyncio.to_thread(self._dispose_rows, orphans,
                                           self.clock.now() - timedelta(seconds=DISPOSE_WAIT_S))
        except Exception:
            self.dispositions = [d for ds in orphans.values() for d in ds] + self.dispositions
            raise
        now = self.clock.now()
        for job_id, ds in orphans.items():
            pending = set(done[job_id]["pending"])
            self.dispositions += [d for d in ds if d["call_id"] in pending
                                  and (now - d["at"]).total_seconds() < DISPOSE_WAIT_S]
            self.stats["orphans_refused"] += len(done[job_id]["refused"])
            if done[job_id]["refused"]:
                log.warning("job %s: dispositions refused: %s", job_id, "; ".join(done[job_id]["refused"][:5]))
        applied = sum(len(d["applied"]) for d in done.values())
        self.stats["orphans_applied"] += applied
        return applied

    def _dispose_rows(self, orphans: dict[int, list[dict[str, Any]]],
                      expire_before: datetime) -> dict[int, dict[str, list[str]]]:
        if self.disposer is None or self.disposer.broken:
            self.disposer = self.open_store()
        return {job_id: self.disposer.dispose(job_id, ds, expire_before) for job_id, ds in orphans.items()}

    async def reoffer(self) -> int:
        """Every `REOFFER_S`: hand out again the dispositions written more than `REOFFER_S` ago
        and still not in the ledger that are not waiting here (their taker stopped before
        writing them), marked `again` (a manager's pacers learnt their wrap-up already). A
        taker that still holds one merges the two; the ledger takes it once. At once, of any
        age, those of a job that stopped since the last look: its managers stopped, perhaps
        holding one whose attempt had not settled when they took it (`dispose_orphans` writes
        them at the next tick)."""
        if time.monotonic() - self.reoffered_at < REOFFER_S and not self.ended:
            return 0
        ended, self.ended = self.ended, set()
        self.reoffered_at = time.monotonic()
        known = [d["call_id"] for d in (*self.dispositions, *self.disposing) if d.get("call_id") is not None]
        try:
            stale = await asyncio.to_thread(self._stale_rows, known, sorted(ended))
        except Exception:
            self.ended |= ended
            raise
        self.dispositions += [{**d, "again": True} for d in stale]
        self.stats["reoffered"] += len(stale)
        return len(stale)

    def _stale_rows(self, known: list[str], ended: list[int]) -> list[dict[str, Any]]:
        if self.disposer is None or self.disposer.broken:
            self.disposer = self.open_store()
        return self.disposer.dispositions(REOFFER_S, known, ended)

    def command(self, agent_id: int, command: str, reason: str | None = None) -> dict:
        """An agent command by id (the API's): login, logout, ready, not_ready (reason),
        dispose (reason = the code), force_logoff (reason, default "supervisor")."""
        actions = {"login": self.login, "logout": self.logout, "ready": self.set_ready,
                   "not_ready": lambda a: self.not_ready(a, reason), "dispose": lambda a: self.dispose(a, reason),
                   "force_logoff": lambda a: self.force_logoff(a, reason or "supervisor")}
        if command not in actions:
            raise ValueError(f"unknown agent command {command!r}")
        return actions[command](agent_id)

    # -- desktops: commands by login name (the Agent SDK) ----------------------------------
    DESK_COMMANDS = frozenset({"login", "logout", "ready", "not_ready", "dispose", "accept", "skip"})

    def desk(self, login: str, command: str, *, reason: str | None = None, code: str | None = None,
             callback_at: datetime | None = None, card_id: str | None = None) -> dict[str, Any]:
        """A command from agent `login`'s desktop. Returns `{"agent": view, "cursor": ...}`:
        the agent as it stands and the feed position its view includes. `login` of an agent
        already logged in changes nothing: the desktop's session is re-attached."""
        agent_id = self.agent_id(login)
        agent = self.agents[agent_id]
        if command == "login":
            if not agent.logged_in:
                self.login(agent_id)
            return {"agent": self.view(agent_id), "cursor": self.cursor, "screen": self.screen_of(agent)}
        elif command == "logout":
            self.logout(agent_id)
        elif command == "ready":
            self.set_ready(agent_id)
        elif command == "not_ready":
            self.not_ready(agent_id, reason or "")
        elif command == "dispose":
            self.dispose(agent_id, code or "", callback_at)
        elif command == "accept":
            self.accept(agent_id, card_id or "")
        elif command == "skip":
            self.skip(agent_id, card_id or "", code)
        else:
            raise ValueError(f"unknown desk command {command!r}")
        return {"agent": self.view(agent_id), "cursor": self.cursor}

    def desk_many(self, commands: Iterable[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any] | Exception]:
        """`desk` for a batch of (login, command, arguments), in order: each command's answer,
        or the exception it raised (the others still apply)."""
        out: list[dict[str, Any] | Exception] = []
        for login, command, kw in commands:
            try:
                out.append(self.desk(login, command, **kw))
            except Exception as exc:
                out.append(exc)
        return out

    def views(self, logins: Iterable[str]) -> dict[str, Any]:
        """A gateway's resync: the views of the agents named (unknown logins are left out), the
        screen pops of the calls they hold (by login) and the feed position they include."""
        known = [self.agents[self.logins[login]] for login in logins if login in self.logins]
        return {"agents": [self.view(a.id) for a in known], "cursor": self.cursor,
                "screens": {a.login: screen for a in known if (screen := self.screen_of(a)) is not None}}

    def screen_of(self, agent: Agent) -> dict[str, Any] | None:
        """The screen pop of the call the agent holds (None: none, or not popped yet): a desktop
        that resyncs or logs in again gets it again, so a pop lost with a restart is not lost."""
        return self.screens.get(agent.call_id) if agent.call_id is not None else None

    def supervise(self, login: str, command: str, *, job_id: int | None = None,
                  reason: str | None = None) -> dict[str, Any]:
        """A supervisor's command on agent `login`: `force_logoff` (reason) or `move` (job_id,
        None to unpin)."""
        agent_id = self.agent_id(login)
        if command == "force_logoff":
            return self.force_logoff(agent_id, reason or "supervisor")
        if command == "move":
            return self.move(agent_id, job_id)
        raise ValueError(f"unknown supervisor command {command!r}")

    # -- preview --------------------------------------------------------------------------
    def preview(self, job_id: int, card_id: str, card: dict[str, Any], timeout_s: float | None = 30.0, *,
                owner: str | None = None, on_timeout: str = "dial",
                skip_codes: Iterable[str] = (cards.SKIPPED,)) -> int | None:
        """Offer a preview card of job `job_id` to its longest-ready agent, who is reserved for
        it (call id = card id) and shown `card` (`core.agents.desk.preview_card`); None if no
        agent of the job is ready. The card ends once (core/agents/preview.py): the agent's
        `accept` or `skip`, the time-out after `timeout_s` (None: none) by `on_timeout`, or a
        cancel; its answer waits for `owner` (`take_answers`)."""
        if card_id in self.offers:
            return self.offers[card_id].agent_id
        agent_id = self.reserve(job_id, card_id, reason="preview")
        if agent_id is None:
            return None
        now = self.clock.now()
        c = self.offers[card_id] = cards.Card(card_id, agent_id, job_id, owner, now, timeout_s, on_timeout,
                                              tuple(skip_codes) or (cards.SKIPPED,))
        if timeout_s is None:
            self.reservations.pop(agent_id, None)          # no time-out: the agent answers
        else:
            self.reservations[agent_id] = c.expires_at
        self.push(agent_id, {"type": "preview", **card, "card_id": card_id, "job_id": job_id,
                             "timeout_s": timeout_s, "expires_at": c.expires_at, "on_timeout": on_timeout,
                             "skip_codes": list(c.skip_codes)})
        return agent_id

    def offer_cards(self, job_id: int, owner: str, new: dict[str, dict[str, Any]], shown: Iterable[str] = (), *,
                    timeout_s: float | None = 30.0, on_timeout: str = "dial",
                    skip_codes: Iterable[str] = (cards.SKIPPED,)) -> dict[str, Any]:
        """A Campaign Manager's preview round, one call: show its `new` cards (in order, while
        agents of the job are ready), hand it the answers waiting for it, and close as
        `cancelled` the cards it still thinks `shown` that are known here no more (lost in a
        restart; an agent still reserved for one is released). Returns `offered` (card ->
        agent, None: no agent ready), `answers` (card -> `Answer.as_dict`) and `ready` (the
        job's ready agents left)."""
        offered: dict[str, int | None] = {}
        for card_id, card in new.items():
            offered[card_id] = agent = self.preview(job_id, card_id, card, timeout_s, owner=owner,
                                                    on_timeout=on_timeout, skip_codes=skip_codes)
            if agent is None:
                break
        answers = self.take_answers(job_id, owner)
        now = self.clock.now()
        for card_id in shown:
            if card_id not in self.offers and card_id not in answers:
                agent_id = self.release(card_id, "cancelled")
                answers[card_id] = {"card_id": card_id, "agent_id": agent_id, "answer": "cancelled", "dial": False,
                                    "code": cards.CANCELLED, "at": now, "shown_s": 0.0, "reason": "lost"}
        return {"offered": offered, "answers": answers, "ready": len(self.roster.ready(job_id))}

    def _offer_of(self, agent_id: int, card_id: str) -> cards.Card:
        offer = self.offers.get(card_id)
        if offer is None or offer.agent_id != agent_id or not offer.open:
            raise DispositionError("card_id", f"no preview card {card_id!r} is waiting for this agent")
        return offer

    def _answer(self, offer: cards.Card, answer: cards.Answer) -> None:
        self.answers.setdefault((offer.job_id, offer.owner), {})[offer.card_id] = answer.as_dict()
        agent = self.agents[offer.agent_id]
        if answer.dial:                                    # held while its call is placed
            self.reservations[agent.id] = answer.at + timedelta(seconds=PREVIEW_DIAL_S) + self.reserve_timeout
            self._record([note(agent, answer.at, "accept", "timeout" if answer.answer == "timeout" else "agent")])
        else:                                              # the agent is free again
            self.offers.pop(offer.card_id, None)
            self.release(offer.card_id, answer.answer if answer.answer != "skip" else "skipped")

    def accept(self, agent_id: int, card_id: str) -> dict:
        """The agent takes the previewed contact: it stays reserved while the call is placed."""
        offer = self._offer_of(agent_id, card_id)
        self._answer(offer, cards.accept(offer, self.clock.now()))
        return self.view(agent_id)

    def skip(self, agent_id: int, card_id: str, code: str | None = None) -> dict:
        """The agent passes on the previewed contact (with one of the card's skip codes): the
        card ends and the agent is ready."""
        offer = self._offer_of(agent_id, card_id)
        self._answer(offer, cards.skip(offer, self.clock.now(), code))
        return self.view(agent_id)

    def _withdraw(self, agent: Agent, reason: str) -> None:
        """An agent leaving (logout, not ready, a lost desktop) while a card waits for its
        answer: the card is cancelled and the contact returned, never dialled."""
        offer = self.offers.get(agent.call_id) if agent.state == S.RESERVED and agent.call_id else None
        if offer is not None and offer.open:
            self._answer(offer, cards.cancel(offer, self.clock.now(), reason))

    def take_answers(self, job_id: int, owner: str | None = None) -> dict[str, dict]:
        """The answers to the preview cards of job `job_id` offered for `owner` since the last
        call (card -> answer)."""
        return self.answers.pop((job_id, owner), {})

    def force_logoff(self, agent_id: int, reason: str = "supervisor") -> dict:
        """Supervisor command: out now, or when the agent's call ends (docs/agents.md); a
        preview card it holds unanswered is cancelled."""
        self._withdraw(self._agent(agent_id), reason)
        self._do(self._agent(agent_id), E.FORCE_LOGOFF, reason=reason)
        return self.view(agent_id)

    # -- calls: the hot path ----------------------------------------------------------------
    def reserve(self, job_id: int, call_id: str, reason: str | None = None) -> int | None:
        """The agent (longest ready of the job) now reserved for answered call `call_id` (or
        a preview card, `reason` "preview"), or None if no agent of the job is ready. A call
        already reserved gets the same agent (an accepted card's call when it is answered)."""
        held = self.calls.get(call_id)
        if held is not None:
            return held
        first = self.roster.first_ready(job_id)
        if first is None:
            self.stats["no_agent"] += 1
            return None
        agent = self.agents[first]
        self._do(agent, E.RESERVE, job_id=job_id, call_id=call_id, reason=reason)
        self.stats["reserved"] += 1
        return agent.id

    def reserve_many(self, job_id: int, call_ids: Iterable[str],
                     screens: dict[str, dict] | None = None) -> dict[str, int | None]:
        """`reserve` for a batch of answered calls of one job, in order; a call's screen
        (`core.agents.desk.screen_pop`), if given, pops on its agent's desktop at once."""
        out = {c: self.reserve(job_id, c) for c in call_ids}
        for call_id, screen in (screens or {}).items():
            if out.get(call_id) is not None:
                self._pop(out[call_id], call_id, screen)
        return out

    def _pop(self, agent_id: int, call_id: str, screen: dict) -> None:
        if call_id in self.screens:
            return                                        # popped already (at reserve)
        frame = self.screens[call_id] = {**screen, "type": "call", "call_id": call_id}
        self.push(agent_id, frame)

    def _call_agent(self, call_id: str) -> Agent:
        try:
            return self.agents[self.calls[call_id]]
        except KeyError:
            raise UnknownCall(call_id) from None

    def release(self, call_id: str, reason: str = "call gone") -> int | None:
        """The reservation for `call_id` ends without a connect; the agent it freed (None if
        no agent held it, e.g. it already timed out)."""
        agent_id = self.calls.get(call_id)
        if agent_id is None or self.agents[agent_id].state != S.RESERVED:
            return None
        self._do(self.agents[agent_id], E.RELEASE, reason=reason)
        self.offers.pop(call_id, None)
        return agent_id

    def connect(self, call_id: str, screen: dict | None = None) -> int:
        """The call is bridged onto its reserved agent; `screen` pops on the desktop (unless
        it did at `reserve_many`)."""
        agent = self._call_agent(call_id)
        if screen is not None and agent.state == S.RESERVED:
            self._pop(agent.id, call_id, screen)          # the screen first, then the on_call state
        self._do(agent, E.CONNECT)
        self.offers.pop(call_id, None)
        return agent.id

    def hangup(self, call_id: str) -> int:
        """The call ended: its agent goes to wrap-up with its job's limit."""
        agent = self._call_agent(call_id)
        if agent.state == S.ON_CALL and agent.since is not None:
            self.talked[agent.id] = max(0.0, (self.clock.now() - agent.since).total_seconds())
        job = self.jobs.get(agent.call_job if agent.call_job is not None else agent.job_id)
        self._do(agent, E.HANGUP, wrap_limit_s=job.wrap_limit_s if job else DEFAULT_WRAP_LIMIT_S)
        return agent.id

    def settle_calls(self, connect: Iterable[str] = (), release: Iterable[str] = (),
                     hangup: Iterable[str] = ()) -> dict[str, int]:
        """A Campaign Manager's batch of call events (core/agents/bridge.py): calls bridged
        onto their reserved agents, reservations given up (the call was abandoned), calls
        ended. A call no agent holds any more (its reservation timed out, the agent was
        forced off) is counted in `stale` and skipped: the rest of the batch still applies."""
        done = {"connected": 0, "released": 0, "hung_up": 0, "stale": 0}
        for calls, key, step in ((connect, "connected", self._connect_reserved), (release, "released", self.release),
                                 (hangup, "hung_up", self._hangup_held)):
            for call in calls:
                if step(call) is None:
                    done["stale"] += 1
                else:
                    done[key] += 1
        return done

    def _connect_reserved(self, call_id: str) -> int | None:
        agent_id = self.calls.get(call_id)
        if agent_id is None or self.agents[agent_id].state != S.RESERVED:
            return None
        return self.connect(call_id)

    def _hangup_held(self, call_id: str) -> int | None:
        """The call's end; a call still reserved was bridged all the same (only calls the
        gateway put through to an agent are hung up here): its connect was lost with the
        manager that bridged it, so it is connected first."""
        agent_id = self.calls.get(call_id)
        if agent_id is not None and self.agents[agent_id].state == S.RESERVED and call_id not in self.offers:
            self.connect(call_id)
        if agent_id is None or self.agents[agent_id].state != S.ON_CALL:
            return None
        return self.hangup(call_id)

    # -- jobs, licenses and attachment ------------------------------------------------------
    def set_jobs(self, jobs: Iterable[JobSpec], notifications: Iterable[Demand] = ()) -> None:
        """The running jobs, all of them: agent-based (`JobSpec`) and agent-less (`Demand` on
        the ports pool). Jobs missing from the list have stopped: their agents are re-attached."""
        jobs = {j.job_id: j for j in jobs}
        self.overrides = {j: o for j, o in self.overrides.items() if j in jobs}
        for job_id, limits in list(self.overrides.items()):
            try:
                jobs[job_id] = with_limits(jobs[job_id], **limits)      # a supervisor's limits stay
            except AttachmentError:
                self.overrides.pop(job_id)
        notifications = {d.job_id: d for d in notifications}
        if self.jobs_known and jobs == self.jobs and notifications == self.notifications:
            return                                        # told again, nothing changed (every director tick)
        stopped = set(self.jobs) - set(jobs)
        self.pins = {a: j for a, j in self.pins.items() if j in jobs}
        self.jobs, self.notifications = jobs, notifications
        self.port_shares.keep(notifications)
        self.jobs_known = True
        self._allocate()
        self.rebalance_due = True
        if stopped:
            self.ended |= stopped                         # their taken dispositions: `reoffer` now
            log.info("agent jobs stopped: %s", sorted(stopped))

    def set_job(self, job_id: int, *, priority=_UNSET, min_agents=_UNSET, max_agents=_UNSET) -> dict:
        """Supervisor command: a running job's priority, minimum or maximum of agents."""
        job = self.jobs.get(job_id)
        if job is None:
            raise AttachmentError(f"job {job_id} is not a running agent-based job")
        kw = {k: v for k, v in (("priority", priority), ("min_agents", min_agents), ("max_agents", max_agents))
              if v is not _UNSET}
        self.jobs[job_id] = with_limits(job, **kw)
        self.overrides.setdefault(job_id, {}).update(kw)
        self._allocate()
        self.rebalance_due = True
        return self.jobs[job_id].as_dict()

    def move(self, agent_id: int, job_id: int | None) -> dict:
        """Supervisor command: move an agent to a running job (pinned there until the job
        stops or the agent logs out), at once or when its call ends. `None` unpins it and
        leaves it to the next rebalance."""
        agent = self._agent(agent_id)
        if not agent.logged_in:
            raise AttachmentError(f"agent {agent_id} is not logged in")
        if job_id is None:
            self.pins.pop(agent_id, None)
            self.rebalance_due = True
            return self.view(agent_id)
        if agent.job_id != job_id:
            attached = len(self.members.get(job_id, ())) + sum(1 for j in self.pending_moves.values() if j == job_id)
            check_move(self.jobs.get(job_id), agent.skills, agent.groups, attached, self.allocation.get(job_id, None))
        self.pins[agent_id] = job_id
        if agent.busy:
            self.pending_moves[agent_id] = job_id
            self._record([note(agent, self.clock.now(), "move", f"to job {job_id} after the call")])
        else:
            self._attach(agent, job_id, self.clock.now(), "move", "supervisor")
        self.rebalance_due = True
        return self.view(agent_id)

    def _allocate(self) -> None:
        demands = [j.demand() for j in self.jobs.values()] + list(self.notifications.values())
        self.allocation = allocate(self.pools, demands)

    def set_pools(self, pools: LicensePools) -> dict:
        self.pools = pools
        self._allocate()
        self.rebalance_due = True
        return self.licenses()

    def licenses(self) -> dict:
        """The license allocation: pools (size, granted, free) and each running job's grant;
        for the ports, the calls in flight and the cap of each manager of a notification job as
        its managers last reported (`in_use`, `caps` by manager index)."""
        view = self.allocation.as_dict()
        view["pools"]["ports"]["in_use"] = self.port_shares.in_use()
        for job in view["jobs"]:
            if job["pool"] == "ports":
                reports = self.port_shares.reports.get(job["job_id"], {})
                job["in_use"] = sum(r.in_use for r in reports.values())
                job["caps"] = {i: r.handed for i, r in sorted(reports.items())}
        return view

    def ports(self, job_id: int, index: int, managers: int, in_use: int, held: int | None,
              wanting: bool) -> dict[str, int | None] | None:
        """A notification job's manager `index` of `managers` asks for its cap on calls in
        flight, telling what it holds (core/agents/ports.py): `{"cap", "grant"}` (None:
        unlimited), or None while the job is not a running notification job here (not told
        yet, after a restart): the manager keeps the cap it holds."""
        if job_id not in self.notifications:
            return None
        grant = self.allocation.get(job_id, None)
        # No pool (ports unlicensed): no cap, the job's own pacing limits alone. A cap held to a
        # manager's calls in flight while its contacts are not yet due would hold their
        # retries back until it probes again (PORTS_PROBE_S).
        limit = None if self.pools.ports is None else grant
        cap = self.port_shares.cap(job_id, index, managers, limit, self.pools.ports,
                                   Report(max(0, int(in_use)), held, bool(wanting)), time.monotonic())
        return {"cap": cap, "grant": grant}

    def rebalance(self) -> int:
        """Re-plan the attachment of every logged-in agent; the moves made now (at most
        `MOVES_PER_TICK`: the others at the next ticks, `next_moves`). Nothing moves until the
        running jobs have been told since the start (after a restart the agents keep the jobs
        they had)."""
        self.rebalance_due = False
        if not self.jobs_known:
            return 0
        seats = [Seat(a.id, a.skills, a.job_id, a.busy, a.groups) for a in self.agents.values() if a.logged_in]
        p = plan(self.jobs.values(), seats, grants={j: self.allocation.get(j, None) for j in self.jobs},
                 pins=self.pins)
        self.pending_moves = dict(p.pending)
        self.moves_left = deque(p.moves)
        return self.next_moves()

    def next_moves(self) -> int:
        """Up to `MOVES_PER_TICK` of the last plan's moves not made yet, each as planned still
        (the agent logged in, idle, where the plan found it, its job running); one that is not
        makes the next tick plan again."""
        now, done = self.clock.now(), 0
        while self.moves_left and done < MOVES_PER_TICK:
            m = self.moves_left.popleft()
            agent = self.agents.get(m.agent_id)
            if agent is None or not agent.logged_in or agent.busy or agent.job_id != m.from_job \
                    or (m.to_job is not None and m.to_job not in self.jobs):
                self.rebalance_due = True
                continue
            self._attach(agent, m.to_job, now, "move", "rebalance")
            done += 1
        return done

    def targets(self) -> dict[int, dict]:
        """Per running job: its spec, attached agents and license grant (supervisor view)."""
        return {j: {**spec.as_dict(), "agents": len(self.members.get(j, ())),
                    "ready": len(self.roster.ready(j)), "granted": self.allocation.get(j, None)}
                for j, spec in sorted(self.jobs.items())}

    # -- pacing -------------------------------------------------------------------------------
    def snapshot(self, job_id: int, index: int = 0, managers: int = 1, **extra) -> PacerSnapshot:
        """The pacer's view of job `job_id`'s agents at now — of manager `index` of the job's
        `managers`: every `managers`-th attached agent by id, so the managers' shares are
        disjoint and stable while the job's agents stay (core/pacing/live.py); `extra`
        (dialling, waiting, counters, ports_cap, events, offers, inbound) is what the
        caller knows."""
        if not 0 <= index < managers:
            raise ValueError(f"manager index {index} is not one of {managers}")
        share = None if managers == 1 else set(sorted(self.members.get(job_id, ()))[index::managers])
        return self.roster.snapshot(job_id, self.clock.now(), share, **extra)

    # -- the change feed (desktops) -----------------------------------------------------------
    def _record(self, transitions: list[Transition]) -> None:
        """Log transitions for the next flush and append them to the change feed."""
        self.log.extend(transitions)
        self.recorded += len(transitions)
        if transitions:
            self.feed.record(transitions)

    def push(self, agent_id: int, frame: dict[str, Any]) -> None:
        """Send `frame` (a preview card, a screen pop) to the agent's desktop, through the feed."""
        self.feed.push(agent_id, frame)

    def _login_of(self, agent_id: int) -> str | None:
        agent = self.agents.get(agent_id)
        return agent.login if agent is not None else None

    @property
    def cursor(self) -> str:
        return self.feed.cursor

    def changes_since(self, cursor: str | None, limit: int = 10_000) -> dict[str, Any]:
        """The feed's frames after `cursor` (`ChangeFeed.since`)."""
        return self.feed.since(cursor, limit)

    async def changes(self, cursor: str | None, timeout_s: float = 10.0, limit: int = 10_000) -> dict[str, Any]:
        """`changes_since`, waiting up to `timeout_s` for a change when there is none yet (the
        long poll a gateway keeps open; it returns as soon as anything is appended)."""
        self.stats["feed_polls"] += 1
        await self.feed.wait(cursor, timeout_s)
        return self.feed.since(cursor, limit)        # the feed of now (a rebuild may have replaced it)

    # -- the tick ------------------------------------------------------------------------------
    def tick(self, flush: bool = True) -> dict[str, int]:
        """Wrap-up and reservation timeouts, a rebalance if something changed, one flush
        (unless `flush` is false: `run` writes off the event loop)."""
        now = self.clock.now()
        wraps = 0
        for agent_id, until in self.timers.due(now):
            agent = self.agents.get(agent_id)
            if agent is not None and agent.state == S.WRAP_UP and agent.wrap_until == until:
                self._do(agent, E.WRAP_TIMEOUT, now)
                wraps += 1
        lapsed = [a for a, deadline in self.reservations.items() if deadline <= now]
        for agent_id in lapsed:
            call = self.agents[agent_id].call_id
            offer = self.offers.get(call) if call is not None else None
            expired = cards.expire(offer, now) if offer is not None else None
            if expired is not None:                       # a card's time-out: dial it or release
                self._answer(offer, expired)
                continue
            self.offers.pop(call, None)
            self._do(self.agents[agent_id], E.RELEASE, now, reason="reservation timed out")
        self.stats["wrap_timeouts"] += wraps
        self.stats["reservation_timeouts"] += len(lapsed)
        moves = self.rebalance() if self.rebalance_due else self.next_moves()
        for session in self.nails.due(now):                # graces over: the legs are released
            self._unnail(session, now)
        written = self.flush() if flush else 0
        return {"wrap_timeouts": wraps, "released": len(lapsed), "moves": moves, "written": written}

    def flush(self) -> int:
        """Write the transitions logged since the last flush and the agents' current rows, in
        one transaction. On failure nothing is lost: they are written at the next flush."""
        if not self.log and not self.dirty:
            return 0
        upto, (rows, dirty, disposed, states) = self.recorded, self._take()
        try:
            self.store.write(rows, states, disposed)
        except Exception:
            self._put_back(rows, dirty, disposed)
            raise
        return self._written(rows, upto, disposed)

    def _take(self) -> tuple[list[Transition], set[int], list[dict[str, Any]], list[tuple]]:
        rows, dirty, disposed = self.log, self.dirty, self.disposing
        self.log, self.dirty, self.disposing = [], set(), []
        states = [(a.id, str(a.state), a.job_id, a.since or self.clock.now(), self.screen_of(a))
                  for a in (self.agents[i] for i in sorted(dirty) if i in self.agents)]   # not deleted
        return rows, dirty, disposed, states

    def _put_back(self, rows: list[Transition], dirty: set[int], disposed: list[dict[str, Any]]) -> None:
        self.log, self.dirty = rows + self.log, dirty | self.dirty
        self.disposing = disposed + self.disposing
        self.stats["flush_errors"] += 1

    def _written(self, rows: list[Transition], upto: int, disposed: list[dict[str, Any]]) -> int:
        self.durable = max(self.durable, upto)
        self.dispositions += disposed                     # written: theirs to take now
        self.stats["flushes"] += 1
        self.stats["written"] += len(rows)
        return len(rows)

    async def write(self) -> int:
        """`flush` off the event loop: in a thread, on a connection of its own (`writer`), so
        that screen pops and replies go on meanwhile. One write at a time: a caller that comes
        while one runs waits for it instead. Raises what the write raised."""
        if self._round is not None:
            failed = await asyncio.shield(self._round)
            if failed is not None:
                raise failed
            return 0
        if not self.log and not self.dirty:
            return 0
        upto, (rows, dirty, disposed, states) = self.recorded, self._take()
        self._round = asyncio.get_running_loop().create_future()
        failed = None
        try:
            await asyncio.to_thread(self._write_rows, rows, states, disposed)
        except Exception as exc:
            failed = exc
            self._put_back(rows, dirty, disposed)
            raise
        finally:
            self._round.set_result(failed)
            self._round = None
        return self._written(rows, upto, disposed)

    def _write_rows(self, rows: list[Transition], states: list[tuple], disposed: list[dict[str, Any]]) -> None:
        if self.writer is None or self.writer.broken:
            self.writer = self.open_store()
        self.writer.write(rows, states, disposed)

    async def written(self) -> None:
        """Return once every transition recorded so far is in PostgreSQL. A reply that must
        survive this actor's restart (a reservation, a connect, a desktop's or supervisor's
        command) waits for it, so that what a caller was told is what `rebuild` reads back;
        the callers of the moment share one write (group commit: the first waits `linger_s`
        for others to join; 10,000 desktops wrote ~160 times a second without). Raises if
        the write fails."""
        target = self.recorded
        if self.durable < target and self._round is None:
            await asyncio.sleep(self.linger_s)
        while self.durable < target:
            await self.write()

    async def run(self) -> None:
        heap = HeapKeeper()               # the agents and the feed out of every full collection
        while True:
            try:
                self.tick(flush=False)
                await self.hold_legs()    # first: an agent attached now gets calls once its leg is up
                await self.write()
                await self.dispose_orphans()
                await self.reoffer()
            except Exception:
                log.exception("agent manager tick failed")
                self.recover()
            heap.settle()
            await asyncio.sleep(self.settings.tick_s)

    def recover(self) -> None:
        if self.store.broken:
            try:
                self.store = self.open_store()
            except Exception as exc:
                log.warning("database unreachable: %s", exc)

    # -- restart -------------------------------------------------------------------------------
    def rebuild(self) -> int:
        """Read every agent back from PostgreSQL: its latest transition (state, since, reason,
        call, pending command, wrap-up limit) and its job. Returns the agents logged in.
        Reservations found are given a fresh timeout; wrap-up limits keep their deadline."""
        now = self.clock.now()
        self._reset()
        for r in self.store.load():
            state = S(r["to_state"] or r["row_state"] or S.LOGGED_OUT)
            busy = state in BUSY
            a = Agent(r["id"], r["login"], self._names(r["skills"] or ()), state,
                      groups=self._names(r["groups"] or ()), name=r["name"] or "",
                      since=r["at"] or r["updated_at"], reason=r["reason"] if state == S.NOT_READY else None,
                      job_id=r["job_id"] if state != S.LOGGED_OUT else None,
                      call_id=r["call_id"] if busy else None, call_job=r["event_job"] if busy else None,
                      wrap_until=r["wrap_until"] if state == S.WRAP_UP else None,
                      pending=E(r["pending"]) if r["pending"] and busy else None,
                      pending_reason=r["pending_reason"] if r["pending"] and busy else None)
            self.agents[a.id] = a
            self.logins[a.login] = a.id
            if a.job_id is not None:
                self.members.setdefault(a.job_id, set()).add(a.id)
            self.roster.place(a)                                # in `since` order at its first read
            if busy and a.call_id is not None:
                self.calls[a.call_id] = a.id
                if (r.get("screen") or {}).get("call_id") == a.call_id:
                    self.screens[a.call_id] = r["screen"]          # popped again at the resync
            if state == S.RESERVED:
                self.reservations[a.id] = now + self.reserve_timeout
            if a.wrap_until is not None:
                self.timers.schedule(a.id, a.wrap_until)
        # acknowledged, not yet in the ledger (taken before the restart: `again`)
        self.dispositions = [{**d, "again": True} for d in self.store.dispositions()]
        for agent_id, session_id in last_sessions(self.store.sessions()).items():
            if agent_id in self.agents and self.agents[agent_id].logged_in:      # re-attached as they were
                self.nails.restore(agent_id, session_id, self.agents[agent_id].job_id, now)
        for a in self.agents.values():                     # attached, never nailed (an unwritten nail)
            if a.logged_in and a.job_id is not None:
                self._nail(a, a.job_id, now)
        logged_in = sum(1 for a in self.agents.values() if a.logged_in)
        log.info("agent manager rebuilt: %d agents, %d logged in, %d nailed sessions, %d dispositions to take",
                 len(self.agents), logged_in, len(self.nails), len(self.dispositions))
        return logged_in

    def metrics(self) -> dict[str, Any]:
        """What the gateway's `/metrics` asks once per scrape, counts only: logged-in agents by
        (state, job) (one pass over the agents in memory: about 1 ms per 10,000), the license
        pools (size, None: unlimited; in use: agents attached to the pool's jobs, for ports the
        notification jobs' calls in flight their managers last reported), each running job's grant, the reservation
        counters and the reserve-to-connect histogram."""
        agents: dict[tuple[str, int | None], int] = {}
        for a in self.agents.values():
            if a.state != S.LOGGED_OUT:
                key = (str(a.state), a.job_id)
                agents[key] = agents.get(key, 0) + 1
        in_use: dict[str, int | None] = {p: 0 for p in POOLS}
        in_use["ports"] = self.port_shares.in_use()      # calls in flight, as the managers last told
        for job_id, spec in self.jobs.items():
            in_use[spec.pool] = (in_use.get(spec.pool) or 0) + len(self.members.get(job_id, ()))
        pools = {p: {"size": self.pools.size(p), "in_use": in_use[p]} for p in POOLS}
        grants = [{"job_id": j, "pool": d.pool, "granted": self.allocation.get(j, None)}
                  for j, d in sorted({**{j: s.demand() for j, s in self.jobs.items()}, **self.notifications}.items())]
        return {"agents": [{"state": s, "job_id": j, "count": n} for (s, j), n in sorted(
                    agents.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1]))],
                "pools": pools, "grants": grants, "reserved": self.stats["reserved"],
                "no_agent": self.stats["no_agent"], "reservation_timeouts": self.stats["reservation_timeouts"],
                "connect_latency": self.connect_latency.as_dict(), "nailed": self.nails.counts()}

    def status(self) -> dict:
        by_state: dict[str, int] = {}
        for a in self.agents.values():
            by_state[str(a.state)] = by_state.get(str(a.state), 0) + 1
        return {"state": "up", "agents": len(self.agents), "by_state": by_state, "jobs": len(self.jobs),
                "jobs_known": self.jobs_known, "calls": len(self.calls), "unwritten": len(self.log),
                "offers": len(self.offers), "feed": {"cursor": self.cursor, "kept": len(self.feed)},
                "feed_streams": {"gateways": self.streams.clients, "refused": self.streams.refused},
                "pending_moves": len(self.pending_moves), "pins": len(self.pins),
                "nailed": self.nails.counts(), **self.stats}
