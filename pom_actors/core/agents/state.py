"""The agent state machine, as one explicit transition table.

    logged_out --login--> not_ready(login)
    not_ready  --ready--> ready                  --not_ready(reason)--> not_ready(reason)
    not_ready  --not_ready(reason)--> not_ready  (a new reason code)
    ready      --reserve(job, call)--> reserved  (an answered call is being bridged to the agent)
    reserved   --release--> ready                (the reservation timed out or the call is gone)
    reserved   --connect--> on_call
    on_call    --hangup--> wrap_up               (after-call work, until `wrap_until`)
    wrap_up    --dispose(code)--> ready          --wrap_timeout--> ready
    ready|not_ready --logout--> logged_out
    ready|not_ready|wrap_up --force_logoff--> logged_out

Work is never cut short by the agent or a supervisor. `not_ready`, `logout` and
`force_logoff` sent while the agent is `reserved` or `on_call` (and `not_ready`, `logout` in
`wrap_up`) are *deferred*: the agent's `pending` remembers the strongest of them
(force_logoff > logout > not_ready) and it is applied when the work ends —
a pending force_logoff at `hangup` (wrap-up is skipped: the supervisor wants the agent out)
or at `release`; a pending logout or not_ready where the agent would otherwise become ready
(`dispose`, `wrap_timeout`, `release`). `ready` sent while busy cancels a pending not_ready or
logout (not a force_logoff). A deferred command is a transition too (from = to), so it is
logged. Anything else raises `IllegalAgentTransition` carrying the state and the event.

Times are passed in (`now`, aware datetimes); nothing here reads a clock or does I/O.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    NOT_READY = "not_ready"
    READY = "ready"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


class AgentEvent(StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVE = "reserve"
    RELEASE = "release"
    CONNECT = "connect"
    HANGUP = "hangup"
    DISPOSE = "dispose"
    WRAP_TIMEOUT = "wrap_timeout"
    FORCE_LOGOFF = "force_logoff"


S, E = AgentState, AgentEvent
LOGGED_IN = frozenset({S.NOT_READY, S.READY, S.RESERVED, S.ON_CALL, S.WRAP_UP})
# Busy: the agent is tied to a call (or its after-call work) and is never moved or logged
# out until it ends.
BUSY = frozenset({S.RESERVED, S.ON_CALL, S.WRAP_UP})
LOGIN_REASON = "login"

TRANSITIONS: dict[tuple[AgentState, AgentEvent], AgentState] = {
    (S.LOGGED_OUT, E.LOGIN): S.NOT_READY,
    (S.NOT_READY, E.READY): S.READY,
    (S.NOT_READY, E.NOT_READY): S.NOT_READY,
    (S.READY, E.NOT_READY): S.NOT_READY,
    (S.READY, E.RESERVE): S.RESERVED,
    (S.RESERVED, E.RELEASE): S.READY,
    (S.RESERVED, E.CONNECT): S.ON_CALL,
    (S.ON_CALL, E.HANGUP): S.WRAP_UP,
    (S.WRAP_UP, E.DISPOSE): S.READY,
    (S.WRAP_UP, E.WRAP_TIMEOUT): S.READY,
    (S.READY, E.LOGOUT): S.LOGGED_OUT,
    (S.NOT_READY, E.LOGOUT): S.LOGGED_OUT,
    (S.READY, E.FORCE_LOGOFF): S.LOGGED_OUT,
    (S.NOT_READY, E.FORCE_LOGOFF): S.LOGGED_OUT,
    (S.WRAP_UP, E.FORCE_LOGOFF): S.LOGGED_OUT,
}
# Commands kept for later while the agent works: (state, event) pairs that set `pending`.
DEFERRED: frozenset[tuple[AgentState, AgentEvent]] = frozenset(
    {(s, e) for s in (S.RESERVED, S.ON_CALL) for e in (E.NOT_READY, E.LOGOUT, E.FORCE_LOGOFF)}
    | {(S.WRAP_UP, E.NOT_READY), (S.WRAP_UP, E.LOGOUT)})
_STRENGTH = {None: 0, E.NOT_READY: 1, E.LOGOUT: 2, E.FORCE_LOGOFF: 3}


class IllegalAgentTransition(ValueError):
    def __init__(self, state: AgentState, event: AgentEvent, agent_id: int | None = None):
        who = f"agent {agent_id}" if agent_id is not None else "agent"
        super().__init__(f"{who} in state {state} cannot take event {event}")
        self.state, self.event, self.agent_id = state, event, agent_id

    def __reduce__(self):  # it crosses Ray calls: rebuild from its fields, not the message
        return IllegalAgentTransition, (self.state, self.event, self.agent_id)


@dataclass(slots=True)
class Agent:
    """One agent as the Agent Manager holds it (slotted: 10,000 of them cost a few MB).

    since       when the current state began
    reason      the not-ready reason code (not_ready only)
    job_id      the job the agent is attached to (None: unattached)
    call_id     the call it is reserved for, on, or wrapping up
    call_job    the job of that call
    wrap_until  when after-call work times out (wrap_up with a limit only)
    pending     a deferred not_ready / logout / force_logoff, with its reason
    groups      the agent groups it belongs to (a job naming groups takes only their members)
    name        its display name
    """

    id: int
    login: str
    skills: frozenset[str] = frozenset()
    state: AgentState = S.LOGGED_OUT
    since: datetime | None = None
    reason: str | None = None
    job_id: int | None = None
    call_id: str | None = None
    call_job: int | None = None
    wrap_until: datetime | None = None
    pending: AgentEvent | None = None
    pending_reason: str | None = None
    groups: frozenset[str] = frozenset()
    name: str = ""

    @property
    def busy(self) -> bool:
        return self.state in BUSY

    @property
    def logged_in(self) -> bool:
        return self.state in LOGGED_IN


@dataclass(frozen=True, slots=True)
class Transition:
    """One logged change (or deferral: `from_state == to_state`, `deferred`)."""

    agent_id: int
    at: datetime
    from_state: AgentState
    to_state: AgentState
    event: str
    reason: str | None = None
    job_id: int | None = None
    call_id: str | None = None
    deferred: bool = False
    # the agent as it stands after the event (what a restart rebuilds from the latest row)
    pending: str | None = None
    pending_reason: str | None = None
    wrap_until: datetime | None = None


def apply(agent: Agent, event: AgentEvent, now: datetime, *, reason: str | None = None,
          job_id: int | None = None, call_id: str | None = None,
          wrap_limit_s: float | None = None) -> list[Transition]:
    """Apply `event` to `agent` in place at `now`; the transitions it made, in order (a
    deferred command applied at the end of the work adds a second one).

    reason        not_ready: the reason code; dispose: the disposition code; otherwise free text
    job_id, call_id  reserve: the call's job and id
    wrap_limit_s  hangup: seconds of after-call work allowed (None: no limit)
    """
    event = AgentEvent(event)
    state = agent.state
    if event == E.NOT_READY and not reason:
        raise ValueError("not_ready needs a reason code")
    if (state, event) in DEFERRED:
        if _STRENGTH[event] >= _STRENGTH[agent.pending]:
            agent.pending, agent.pending_reason = event, reason
        return [_record(agent, now, state, event, reason, deferred=True)]
    if event == E.READY and state in BUSY:
        if agent.pending in (E.NOT_READY, E.LOGOUT):
            agent.pending = agent.pending_reason = None
            return [_record(agent, now, state, event, reason, deferred=True)]
        raise IllegalAgentTransition(state, event, agent.id)
    target = TRANSITIONS.get((state, event))
    if target is None:
        raise IllegalAgentTransition(state, event, agent.id)
    if event == E.RESERVE and (job_id is None or call_id is None):
        raise ValueError("reserve needs the call's job and id")

    pending = agent.pending
    if event == E.HANGUP and pending == E.FORCE_LOGOFF:
        target = S.LOGGED_OUT                     # the supervisor wanted the agent out: no wrap-up
        reason = reason or agent.pending_reason or str(E.FORCE_LOGOFF)
    elif target == S.READY and pending is not None and state in BUSY:
        follow = pending
        first = _enter(agent, event, now, target, reason, job_id, call_id, wrap_limit_s)
        agent.pending, why = None, agent.pending_reason
        agent.pending_reason = None
        second = TRANSITIONS[S.READY, follow]
        return [first, _enter(agent, follow, now, second, why or ("deferred" if follow == E.NOT_READY else None),
                              None, None, None)]
    return [_enter(agent, event, now, target, reason, job_id, call_id, wrap_limit_s)]


def _enter(agent: Agent, event: AgentEvent, now: datetime, target: AgentState, reason: str | None,
           job_id: int | None, call_id: str | None, wrap_limit_s: float | None) -> Transition:
    before = agent.state
    call, call_job = agent.call_id, agent.call_job
    agent.state, agent.since = target, now
    agent.reason = reason if target == S.NOT_READY else None
    if event == E.LOGIN:
        agent.reason = reason or LOGIN_REASON
    if event == E.RESERVE:
        agent.call_id, agent.call_job = call, call_job = call_id, job_id
    if target in (S.READY, S.NOT_READY, S.LOGGED_OUT):
        agent.call_id = agent.call_job = None
    agent.wrap_until = (now + timedelta(seconds=wrap_limit_s)
                        if target == S.WRAP_UP and wrap_limit_s is not None else None)
    if target == S.LOGGED_OUT:
        agent.pending = agent.pending_reason = None
    return Transition(agent.id, now, before, target, str(event), agent.reason if target == S.NOT_READY else reason,
                      call_job if call_job is not None else agent.job_id, call,
                      pending=_str(agent.pending), pending_reason=agent.pending_reason, wrap_until=agent.wrap_until)


def _record(agent: Agent, now: datetime, state: AgentState, event: AgentEvent, reason: str | None,
            deferred: bool) -> Transition:
    return Transition(agent.id, now, state, state, str(event), reason,
                      agent.call_job if agent.call_job is not None else agent.job_id, agent.call_id, deferred,
                      _str(agent.pending), agent.pending_reason, agent.wrap_until)


def note(agent: Agent, now: datetime, event: str, reason: str | None = None) -> Transition:
    """A logged change that is not a state transition (attach, detach, move): the agent as it
    stands, its job being the one it is now attached to."""
    return Transition(agent.id, now, agent.state, agent.state, event, reason, agent.job_id, agent.call_id,
                      False, _str(agent.pending), agent.pending_reason, agent.wrap_until)


def _str(event: AgentEvent | None) -> str | None:
    return None if event is None else str(event)


class WrapTimers:
    """When after-call work times out: a heap of (wrap_until, agent id). `due(now)` pops the
    agents whose limit has passed; the caller checks each is still in that wrap-up (an entry
    left behind by a dispose is stale and skipped by comparing `wrap_until`)."""

    def __init__(self):
        self._heap: list[tuple[datetime, int]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, agent_id: int, until: datetime) -> None:
        heapq.heappush(self._heap, (until, agent_id))

    def due(self, now: datetime) -> list[tuple[int, datetime]]:
        out = []
        while self._heap and self._heap[0][0] <= now:
            until, agent_id = heapq.heappop(self._heap)
            out.append((agent_id, until))
        return out


def due_wrap_ups(agents, now: datetime) -> list[int]:
    """Ids of the agents among `agents` whose after-call work has run out at `now` (a scan; the
    service keeps `WrapTimers` so that a tick does not walk every agent)."""
    return [a.id for a in agents if a.state == S.WRAP_UP and a.wrap_until is not None and a.wrap_until <= now]
