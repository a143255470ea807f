"""Which agents work which agent-based jobs.

A running job (`JobSpec`) requires skills, may name agent groups, has a priority (1..10, 10
highest, as for licenses), a minimum and a maximum of agents, and its license grant caps it
further. An agent (`Seat`) has skills, belongs to zero or more groups and may be attached to
one job. An agent is **eligible** for a job when it has every skill the job requires and, if
the job names groups, belongs to at least one of them (`eligible`). `plan` decides the attachment of every
logged-in agent, deterministically and with the fewest changes:

1. **Targets.** The agents eligible for at least one running job are shared among the jobs
   by `licenses.apportion`: minimums first in priority order, the rest by priority share,
   each job capped by `min(max_agents, license grant, agents eligible for it)`.
2. **Keep.** Each job keeps up to its target of the agents already on it (supervisor pins
   first, then agents on a call, then the agents eligible for the fewest jobs, then by id). Agents beyond the target but within the
   cap *may stay*; agents beyond the cap, of a stopped job, or no longer eligible for it (skills
   or groups changed) *must leave*.
3. **Fill.** Jobs below target, in priority order, take agents eligible for them: first
   those that must leave anyway (one move instead of a detach plus an attach), then
   unattached agents, then agents that may stay elsewhere. Among equals, the agent eligible
   for the fewest running jobs first (flexible agents stay available), then the smaller id.
4. **Leftovers.** Unattached agents, and those that must leave, join an eligible job that is
   below its cap (the largest `priority / (agents + 1)`, as for licenses) or stay unattached.

**Busy agents are never moved mid-call.** An agent that is reserved, on a call or wrapping up
is not chosen to fill another job; if it must leave, its move is *pending* (`Plan.pending`)
and the Agent Manager applies it when the work ends. Applying a plan and planning again with
the same inputs gives no moves.

Real-time commands: `with_limits` (priority, min, max of a job) and `check_move` (a
supervisor moves an agent; the move pins the agent to that job until the job stops, the agent
logs out or is no longer eligible for it — `plan` never moves a pinned agent that is eligible).
"""
from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .licenses import PRIORITY_MAX, PRIORITY_MIN, Demand, apportion, pool_for, priority_order

DEFAULT_WRAP_LIMIT_S = 60.0


class AttachmentError(ValueError):
    """A real-time command that cannot be honoured (unknown job, missing skills, job full)."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A running agent-based job as the Agent Manager is told it."""

    job_id: int
    priority: int = 5
    min_agents: int = 0
    max_agents: int | None = None
    skills: frozenset[str] = frozenset()
    mode: str = "progressive"                  # pacing mode: decides the license pool
    wrap_limit_s: float | None = DEFAULT_WRAP_LIMIT_S   # after-call work limit (None: none)
    campaign_id: int | None = None
    groups: frozenset[str] = frozenset()       # an agent must be in one of them (empty: any agent)

    def __post_init__(self) -> None:
        if not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise AttachmentError(f"priority {self.priority} is not within {PRIORITY_MIN}..{PRIORITY_MAX}")
        if self.min_agents < 0 or (self.max_agents is not None and self.max_agents < 0):
            raise AttachmentError("min_agents and max_agents must be >= 0")
        if self.max_agents is not None and self.min_agents > self.max_agents:
            raise AttachmentError(f"min_agents {self.min_agents} > max_agents {self.max_agents}")
        for name in ("skills", "groups"):
            if not isinstance(getattr(self, name), frozenset):
                object.__setattr__(self, name, frozenset(getattr(self, name)))

    @property
    def pool(self) -> str:
        return pool_for(self.mode, True)

    def demand(self) -> Demand:
        return Demand(self.job_id, self.pool, self.priority, self.min_agents, self.max_agents)

    def as_dict(self) -> dict:
        return {"job_id": self.job_id, "priority": self.priority, "min_agents": self.min_agents,
                "max_agents": self.max_agents, "skills": sorted(self.skills), "mode": self.mode,
                "wrap_limit_s": self.wrap_limit_s, "campaign_id": self.campaign_id, "groups": sorted(self.groups)}


_UNSET = object()


def with_limits(job: JobSpec, *, priority=_UNSET, min_agents=_UNSET, max_agents=_UNSET) -> JobSpec:
    """The job with a new priority, minimum or maximum (validated)."""
    changes = {k: v for k, v in (("priority", priority), ("min_agents", min_agents),
                                 ("max_agents", max_agents)) if v is not _UNSET}
    return dataclasses.replace(job, **changes)


@dataclass(frozen=True, slots=True)
class Seat:
    """A logged-in agent as planning sees it."""

    agent_id: int
    skills: frozenset[str]
    job_id: int | None = None
    busy: bool = False
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Move:
    agent_id: int
    from_job: int | None
    to_job: int | None


@dataclass(frozen=True)
class Plan:
    """`moves`: changes to apply now; `pending`: agent -> job (None: detach) to apply when
    the agent's call ends; `targets`: agents per job the plan aims at."""

    moves: tuple[Move, ...]
    pending: dict[int, int | None]
    targets: dict[int, int]
    caps: dict[int, int | None]


def eligible(skills: frozenset[str], groups: frozenset[str], job: JobSpec) -> bool:
    """An agent with `skills` in `groups` may work `job`: it has every skill the job requires
    and is in one of the job's groups, if the job names any."""
    return job.skills <= skills and (not job.groups or not job.groups.isdisjoint(groups))


def cap_of(job: JobSpec, grant: int | None) -> int | None:
    caps = [c for c in (job.max_agents, grant) if c is not None]
    return min(caps) if caps else None


def check_move(job: JobSpec | None, skills: frozenset[str], groups: frozenset[str], attached: int,
               grant: int | None) -> None:
    """Raise AttachmentError unless an agent with `skills` in `groups` may be moved to `job` now."""
    if job is None:
        raise AttachmentError("no such running job")
    if not job.skills <= skills:
        raise AttachmentError(f"the agent lacks skills {sorted(job.skills - skills)} of job {job.job_id}")
    if not eligible(skills, groups, job):
        raise AttachmentError(f"the agent is in none of the groups {sorted(job.groups)} of job {job.job_id}")
    cap = cap_of(job, grant)
    if cap is not None and attached >= cap:
        raise AttachmentError(f"job {job.job_id} is at its limit of {cap} agents")


def plan(jobs: Iterable[JobSpec], seats: Iterable[Seat], *, grants: Mapping[int, int | None] | None = None,
         pins: Mapping[int, int] | None = None) -> Plan:
    """The attachment changes for `seats` over the running `jobs` (see the module doc)."""
    jobs = {j.job_id: j for j in jobs}
    seats = sorted(seats, key=lambda s: s.agent_id)
    by_id = {s.agent_id: s for s in seats}
    grants = grants or {}
    pins = {a: j for a, j in (pins or {}).items()            # a pin holds while the agent is eligible
            if j in jobs and a in by_id and eligible(by_id[a].skills, by_id[a].groups, jobs[j])}
    fits = {s.agent_id: [j for j in jobs.values() if eligible(s.skills, s.groups, j)] for s in seats}
    n_fits = {a: len(f) for a, f in fits.items()}
    eligible_count = {j: 0 for j in jobs}
    for f in fits.values():
        for j in f:
            eligible_count[j.job_id] += 1
    caps = {j: cap_of(spec, grants.get(j)) for j, spec in jobs.items()}
    hi = {j: eligible_count[j] if caps[j] is None else min(caps[j], eligible_count[j]) for j in jobs}
    pool = sum(1 for s in seats if n_fits[s.agent_id])
    targets = apportion(pool, [(j, spec.priority, min(spec.min_agents, hi[j]), hi[j]) for j, spec in jobs.items()])

    order = sorted(jobs, key=lambda j: priority_order(j, jobs[j].priority))
    where: dict[int, int | None] = {}            # agent -> job it will be on (now or after its call)
    count = {j: 0 for j in jobs}
    must_leave: list[Seat] = []
    may_stay: dict[int, list[Seat]] = {j: [] for j in jobs}
    free: list[Seat] = []

    # 2. keep
    members: dict[int, list[Seat]] = {j: [] for j in jobs}
    for s in seats:
        if s.agent_id in pins:
            where[s.agent_id] = pins[s.agent_id]
            count[pins[s.agent_id]] += 1
        elif s.job_id in jobs and eligible(s.skills, s.groups, jobs[s.job_id]):
            members[s.job_id].append(s)
        elif s.job_id is not None:
            must_leave.append(s)
        else:
            free.append(s)
    for j in order:
        for s in sorted(members[j], key=lambda s: (not s.busy, n_fits[s.agent_id], s.agent_id)):
            if count[j] < targets[j]:
                where[s.agent_id] = j
                count[j] += 1
            elif caps[j] is None or count[j] + len(may_stay[j]) < caps[j]:
                may_stay[j].append(s)
            else:
                must_leave.append(s)

    # 3. fill, highest priority first
    def rank(s: Seat) -> tuple:
        return (n_fits[s.agent_id], s.agent_id)

    for j in order:
        if count[j] >= targets[j]:
            continue
        spec = jobs[j]
        tiers = [sorted((s for s in must_leave if not s.busy and s.agent_id not in where
                         and eligible(s.skills, s.groups, spec)), key=rank),
                 sorted((s for s in free if not s.busy and s.agent_id not in where
                         and eligible(s.skills, s.groups, spec)), key=rank),
                 sorted((s for k, group in may_stay.items() if k != j for s in group
                         if not s.busy and s.agent_id not in where and eligible(s.skills, s.groups, spec)), key=rank)]
        for tier in tiers:
            for s in tier:
                if count[j] >= targets[j]:
                    break
                where[s.agent_id] = j
                count[j] += 1
        # still short: take an idle agent another job kept, if an unused agent can replace it there
        for k in order:
            if count[j] >= targets[j]:
                break
            if k == j:
                continue
            for s in sorted((s for s in seats if where.get(s.agent_id) == k and not s.busy
                             and s.agent_id not in pins and eligible(s.skills, s.groups, spec)), key=rank):
                if count[j] >= targets[j]:
                    break
                spare = next((r for r in sorted(must_leave + free, key=rank) if not r.busy
                              and r.agent_id not in where and eligible(r.skills, r.groups, jobs[k])), None)
                if spare is None:
                    break
                where[s.agent_id], where[spare.agent_id] = j, k
                count[j] += 1
        # last: agents that must leave but are on a call (they arrive after it)
        for s in sorted((s for s in must_leave + free if s.busy and s.agent_id not in where
                         and eligible(s.skills, s.groups, spec)), key=rank):
            if count[j] >= targets[j]:
                break
            where[s.agent_id] = j
            count[j] += 1
    for j, group in may_stay.items():            # those not taken stay where they are
        for s in group:
            if s.agent_id not in where:
                where[s.agent_id] = j
                count[j] += 1

    # 4. leftovers: into an eligible job below its cap, or unattached
    heap = [(-(jobs[j].priority / (count[j] + 1)), -jobs[j].priority, j) for j in jobs]
    heapq.heapify(heap)
    for s in sorted((s for s in must_leave + free if s.agent_id not in where), key=rank):
        chosen = None
        skipped = []
        while heap:
            key = heapq.heappop(heap)
            j = key[2]
            if caps[j] is not None and count[j] >= caps[j]:
                continue                          # full for good
            if eligible(s.skills, s.groups, jobs[j]):
                chosen = j
                break
            skipped.append(key)
        for key in skipped:
            heapq.heappush(heap, key)
        if chosen is not None:
            count[chosen] += 1
            heapq.heappush(heap, (-(jobs[chosen].priority / (count[chosen] + 1)), -jobs[chosen].priority, chosen))
        where[s.agent_id] = chosen

    moves, pending = [], {}
    for s in seats:
        to = where.get(s.agent_id, s.job_id)
        if to == s.job_id:
            continue
        if s.busy:
            pending[s.agent_id] = to
        else:
            moves.append(Move(s.agent_id, s.job_id, to))
    return Plan(tuple(moves), pending, dict(targets), caps)
