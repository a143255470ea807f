"""The pacer's view of one job's agents: a `Roster` kept beside the agents, read as a
`PacerSnapshot` (`core/pacing/snapshot.py`).

The Agent Manager knows the agents; the Campaign Manager knows its dials in flight and the
answered calls waiting, and the rule window's counters. The roster holds, per job, the attached
agents the pacers count, in three classes:

* `ready`    — ready agents, the longest-waiting first (`ready_ids` aligned with them; the
               head is the agent the next answered call reserves);
* `talking`  — agents on a call, and agents *reserved* for one (their call is live: it is about
               to be bridged, or it is a preview card being worked);
* `wrapping` — agents in after-call work;

not-ready and logged-out agents are not counted at all. Each class keeps its agents in the order
they entered it with when (`Agent.since`, epoch seconds), so a snapshot is a walk of the counted
agents with one float subtraction each, and no sort: at 10,000 agents, sorting the job's agents
and subtracting dates twice a second held the Agent Manager's loop 20-30 ms each time, ahead of
the screen pops behind it.
"""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from ..pacing.snapshot import PacerSnapshot
from .state import Agent, AgentState

S = AgentState
READY, TALKING, WRAPPING = 0, 1, 2
CLASS_OF = {S.READY: READY, S.ON_CALL: TALKING, S.RESERVED: TALKING, S.WRAP_UP: WRAPPING}


class _Queue:
    """Agents in the order they entered a class, with when: insertion order, which is `since`
    order unless an agent comes in with an older `since` (attached to the job while ready, or
    read back at a restart); then the next read sorts it once (stable: ties keep their order)."""

    __slots__ = ("at", "last", "ordered")

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.last = float("-inf")
        self.ordered = True

    def add(self, agent_id: int, since: float) -> None:
        if since < self.last:
            self.ordered = False
        else:
            self.last = since
        self.at[agent_id] = since

    def items(self) -> dict[int, float]:
        if not self.ordered:
            self.at = dict(sorted(self.at.items(), key=lambda kv: kv[1]))
            self.ordered = True
        return self.at


class Roster:
    """Per job, its counted agents by class. `place(agent)` after every change of an agent's
    state, `since` or job keeps it true; it costs a dict move."""

    def __init__(self) -> None:
        self.jobs: dict[int, tuple[_Queue, _Queue, _Queue]] = {}
        self.where: dict[int, tuple[int, int]] = {}        # agent -> (job, class) it is counted in

    def place(self, agent: Agent) -> None:
        kind = CLASS_OF.get(agent.state)
        since = agent.since.timestamp() if agent.since is not None else float("inf")   # age 0
        old = self.where.get(agent.id)
        if old == (agent.job_id, kind) and self.jobs[old[0]][kind].at[agent.id] == since:
            return                                         # as it was (a deferred command's record)
        self.where.pop(agent.id, None)
        if old is not None:
            queues = self.jobs[old[0]]
            del queues[old[1]].at[agent.id]
            if not (queues[0].at or queues[1].at or queues[2].at):
                del self.jobs[old[0]]                      # a job's last counted agent left
        if agent.job_id is None or kind is None:
            return
        queues = self.jobs.get(agent.job_id)
        if queues is None:
            queues = self.jobs[agent.job_id] = (_Queue(), _Queue(), _Queue())
        queues[kind].add(agent.id, since)
        self.where[agent.id] = (agent.job_id, kind)

    def ready(self, job_id: int) -> dict[int, float]:
        """The job's ready agents, longest-waiting first (read only)."""
        queues = self.jobs.get(job_id)
        return queues[READY].items() if queues is not None else {}

    def first_ready(self, job_id: int) -> int | None:
        return next(iter(self.ready(job_id)), None)

    def snapshot(self, job_id: int, now: datetime, share: Collection[int] | None = None,
                 **extra) -> PacerSnapshot:
        """Job `job_id`'s agents at `now` — only those in `share` if given (a manager's part of
        the job) — with `extra` (dialling, waiting, counters, ports_cap, events, offers,
        inbound) as the caller knows them."""
        queues = self.jobs.get(job_id)
        if queues is None:
            return PacerSnapshot(now=now, **extra)
        t = now.timestamp()

        def ages(kind: int, newest_first: bool = False) -> tuple[tuple[float, ...], list[int]]:
            items = queues[kind].items()
            ids = list(items) if share is None else [i for i in items if i in share]
            if newest_first:
                ids.reverse()
            return tuple(t - s if s < t else 0.0 for s in map(items.__getitem__, ids)), ids

        ready, ready_ids = ages(READY)
        talking, _ = ages(TALKING, newest_first=True)
        wrapping, _ = ages(WRAPPING, newest_first=True)
        return PacerSnapshot(now=now, ready=ready, talking=talking, wrapping=wrapping,
                             ready_ids=tuple(map(str, ready_ids)), **extra)
