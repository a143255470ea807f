"""License distribution: configured pools shared among running jobs.

Three pools: `preview` agents (preview jobs), `predictive` agents (progressive, predictive
and the other agent-based pacings) and `ports` (outbound ports, drawn by notification —
agent-less — jobs). A pool of `None` is unlimited.

Within a pool, `apportion` decides, deterministically:

1. **Minimums first, in priority order.** Jobs are ordered by priority, highest first
   (priority 10 is the highest, 1 the lowest; see docs/agents.md), ties by job id (the older
   job first). Each job gets `min(minimum, maximum)` while the pool lasts.
2. **The rest by priority share.** The remaining units go one at a time to the job with the
   largest `priority / (granted + 1)` that is under its maximum — the D'Hondt divisor
   method started from the minimums — so at the end every job holds its priority-weighted
   share of the pool (a job whose minimum exceeds its share keeps its minimum and takes
   nothing more). Ties: the higher priority, then the smaller job id.

Properties (tests/unit/test_agents_licenses.py, hypothesis): never more than the pool; no
job above its maximum; every minimum honoured when the pool covers the sum of minimums;
raising one job's priority never lowers its grant; the same input gives the same output.
"""
from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

POOLS = ("preview", "predictive", "ports")
PRIORITY_MIN, PRIORITY_MAX = 1, 10
ENV_KEYS = {"preview": "POM_LICENSE_PREVIEW_AGENTS", "predictive": "POM_LICENSE_PREDICTIVE_AGENTS",
            "ports": "POM_LICENSE_OUTBOUND_PORTS"}


def pool_for(mode: str | None, agent_based: bool) -> str:
    """The pool a job draws from: ports if it is agent-less, else by its pacing mode."""
    if not agent_based:
        return "ports"
    return "preview" if mode == "preview" else "predictive"


@dataclass(frozen=True, slots=True)
class LicensePools:
    """Pool sizes; None = unlimited."""

    preview: int | None = None
    predictive: int | None = None
    ports: int | None = None

    def size(self, pool: str) -> int | None:
        return getattr(self, pool)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "LicensePools":
        """From `POM_LICENSE_PREVIEW_AGENTS`, `POM_LICENSE_PREDICTIVE_AGENTS`,
        `POM_LICENSE_OUTBOUND_PORTS` (unset or empty: unlimited)."""
        values = {}
        for pool, key in ENV_KEYS.items():
            raw = (env.get(key) or "").strip()
            if raw:
                n = int(raw)
                if n < 0:
                    raise ValueError(f"{key}={raw!r} must be >= 0")
                values[pool] = n
        return cls(**values)

    def as_dict(self) -> dict[str, int | None]:
        return {p: self.size(p) for p in POOLS}


@dataclass(frozen=True, slots=True)
class Demand:
    """What a running job asks of its pool: `minimum` units if possible, never more than
    `maximum` (None: no maximum)."""

    job_id: int
    pool: str
    priority: int = 5
    minimum: int = 0
    maximum: int | None = None

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"unknown license pool {self.pool!r}")
        if not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise ValueError(f"priority {self.priority} is not within {PRIORITY_MIN}..{PRIORITY_MAX}")
        if self.minimum < 0 or (self.maximum is not None and self.maximum < 0):
            raise ValueError("minimum and maximum must be >= 0")


def priority_order(key: Hashable, priority: int) -> tuple:
    """The one ordering of jobs: highest priority first, then the smaller id (older job)."""
    return (-priority, key)


def apportion(total: int | None, claims: Sequence[tuple[Hashable, int, int, int | None]]) -> dict:
    """Share `total` units among `claims` = (key, weight, minimum, maximum) as the module
    describes. `total` None (unlimited): everyone gets its maximum (None if it has none)."""
    if total is None:
        return {k: hi for k, _, _, hi in claims}
    ordered = sorted(claims, key=lambda c: priority_order(c[0], c[1]))
    got: dict = {}
    left = max(0, total)
    for key, _, lo, hi in ordered:                       # 1. minimums, in priority order
        g = min(lo, left, hi if hi is not None else lo)
        got[key] = g
        left -= g
    heap = [(-(w / (got[k] + 1)), -w, k) for k, w, _, hi in ordered if hi is None or got[k] < hi]
    heapq.heapify(heap)
    caps = {k: hi for k, _, _, hi in ordered}
    while left > 0 and heap:                             # 2. the rest, D'Hondt from the minimums
        _, neg_w, k = heapq.heappop(heap)
        got[k] += 1
        left -= 1
        if caps[k] is None or got[k] < caps[k]:
            heapq.heappush(heap, (neg_w / (got[k] + 1), neg_w, k))
    return got


@dataclass(frozen=True)
class Allocation:
    """Grants per job (units, None = unlimited) with the pools and demands they came from."""

    pools: LicensePools
    demands: tuple[Demand, ...] = ()
    grants: dict[int, int | None] = field(default_factory=dict)

    def __getitem__(self, job_id: int) -> int | None:
        return self.grants[job_id]

    def get(self, job_id: int, default: int | None = 0) -> int | None:
        return self.grants.get(job_id, default)

    def granted(self, pool: str) -> int:
        return sum(self.grants[d.job_id] or 0 for d in self.demands if d.pool == pool)

    def as_dict(self) -> dict:
        pools = {}
        for p in POOLS:
            size, used = self.pools.size(p), self.granted(p)
            pools[p] = {"size": size, "granted": used, "free": None if size is None else size - used}
        jobs = [{"job_id": d.job_id, "pool": d.pool, "priority": d.priority, "minimum": d.minimum,
                 "maximum": d.maximum, "granted": self.grants[d.job_id]}
                for d in sorted(self.demands, key=lambda d: d.job_id)]
        return {"pools": pools, "jobs": jobs}


def allocate(pools: LicensePools, demands: Iterable[Demand]) -> Allocation:
    """Distribute every pool among the jobs that draw from it."""
    demands = tuple(demands)
    if len({d.job_id for d in demands}) != len(demands):
        raise ValueError("a job appears twice among the demands")
    grants: dict[int, int | None] = {}
    for pool in POOLS:
        claims = [(d.job_id, d.priority, d.minimum, d.maximum) for d in demands if d.pool == pool]
        grants.update(apportion(pools.size(pool), claims))
    return Allocation(pools, demands, grants)
