"""Nailing: each agent attached to an agent-based job keeps one continuous call session (the
media gateway's "nailer" flow: an agent leg held up between customer calls), and the job's
answered customer calls (the "driver" flow) are bridged onto it — no new agent leg per call.

When the agent leaves its job (the job ends, a rebalance or a supervisor detaches it) the
session is not hung up at once: it is kept for a *grace* (`NAIL_GRACE_S` business seconds,
`POM_NAIL_GRACE_S`), and an agent attached to any job within it gets the same session back.
A move from one job straight to another keeps it too. A logout releases it at once, and so
does the end of the grace. Times are passed in; nothing here reads a clock or does I/O.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

NAIL_GRACE_S = 60.0          # business seconds a detached agent's session is kept for its next job
NAIL, REUSE, UNNAIL = "nail", "reuse", "unnail"       # the agent_events of a session's life


def new_session_id() -> str:
    return "nail-" + secrets.token_hex(6)


@dataclass(slots=True)
class Session:
    """An agent's nailed session: its id (what the gateways hold the leg under), the job it
    serves (None: detached, in its grace until `release_at`)."""

    id: str
    agent_id: int
    job_id: int | None
    release_at: datetime | None = None


class Nails:
    """The nailed session of every agent that has one (agent id -> Session)."""

    def __init__(self, grace_s: float = NAIL_GRACE_S, new_id: Callable[[], str] = new_session_id):
        if not 0 <= grace_s <= 86_400:
            raise ValueError(f"nail grace {grace_s} s is not within 0..86400")
        self.grace = timedelta(seconds=grace_s)
        self.new_id = new_id
        self.sessions: dict[int, Session] = {}

    def __len__(self) -> int:
        return len(self.sessions)

    def attach(self, agent_id: int, job_id: int) -> tuple[str | None, Session]:
        """The agent joins `job_id`: its session and what became of it — NAIL (a new one),
        REUSE (the one kept in its grace) or None (it had one serving a job: a move keeps it)."""
        s = self.sessions.get(agent_id)
        if s is None:
            s = self.sessions[agent_id] = Session(self.new_id(), agent_id, job_id)
            return NAIL, s
        kept = s.release_at is not None
        s.job_id, s.release_at = job_id, None
        return (REUSE if kept else None), s

    def detach(self, agent_id: int, now: datetime) -> Session | None:
        """The agent left its job: its session is released at `now` + the grace unless the
        agent is attached again before. None if it had none."""
        s = self.sessions.get(agent_id)
        if s is not None and s.release_at is None:
            s.job_id, s.release_at = None, now + self.grace
        return s

    def release(self, agent_id: int) -> Session | None:
        """Release the agent's session now (logout); None if it had none."""
        return self.sessions.pop(agent_id, None)

    def due(self, now: datetime) -> list[Session]:
        """Release the sessions whose grace is over at `now`; those released."""
        out = [s for s in self.sessions.values() if s.release_at is not None and s.release_at <= now]
        for s in out:
            del self.sessions[s.agent_id]
        return out

    def restore(self, agent_id: int, session_id: str, job_id: int | None, now: datetime) -> Session:
        """A session read back after a restart: it serves `job_id`, or (None) its grace starts
        anew at `now` — the time it had left was not kept."""
        s = self.sessions[agent_id] = Session(session_id, agent_id, job_id,
                                              None if job_id is not None else now + self.grace)
        return s

    def legs(self) -> dict[str, int]:
        """Every session the gateways must hold: session id -> agent id."""
        return {s.id: a for a, s in self.sessions.items()}

    def counts(self) -> dict[str, int]:
        """Sessions serving a job, and kept in their grace."""
        grace = sum(1 for s in self.sessions.values() if s.release_at is not None)
        return {"attached": len(self.sessions) - grace, "grace": grace}


def last_sessions(events: Iterable[tuple[int, str, str]]) -> dict[int, str]:
    """From each agent's latest nail / reuse / unnail event (agent id, event, session id), the
    sessions still nailed: agent id -> session id."""
    return {agent: sid for agent, event, sid in events if event in (NAIL, REUSE)}
