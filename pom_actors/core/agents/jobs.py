"""Which running jobs are agent-based, and what the Agent Manager is told about each.

A job is **agent-based** when a call handler of its strategy paces by agents (`pacing.mode`
preview, progressive, predictive, cruise_control or skill_based: `core.strategy.AGENT_MODES`);
every other job is agent-less (a notification job) and draws outbound ports — voice ports,
held by its calls; its SMS, e-mail and custom (webhook) handlers draw none. The director
turns its running jobs into `JobSpec`s and `Demand`s with `job_demands` at every tick and
tells the Agent Manager (`set_jobs`).

From the strategy: the pacing mode (it picks the license pool), the agent groups, minimum
and maximum of agents and the wrap-up limit of the agent-based call handler (the initial
handler if it is one, else the first by name; the skills of every agent-based call handler are
required). From the campaign: the priority (1..10, 10 highest).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..jobchanges import effective
from ..strategy import Handler, Strategy
from .attachment import JobSpec
from .licenses import PRIORITY_MAX, PRIORITY_MIN, Demand


def agent_handler(strategy: Strategy) -> tuple[str, Handler] | None:
    """(name, handler) of the call handler that makes the strategy agent-based, or None."""
    handlers = strategy.handlers
    if strategy.initial in handlers and handlers[strategy.initial].agent_based:
        return strategy.initial, handlers[strategy.initial]
    for name in sorted(handlers):
        if handlers[name].agent_based:
            return name, handlers[name]
    return None


def _priority(value: Any) -> int:
    try:
        return min(PRIORITY_MAX, max(PRIORITY_MIN, int(value)))
    except (TypeError, ValueError):
        return 5


def job_demand(job_id: int, campaign_id: int | None, priority: Any, strategy: Strategy,
               pacing: Mapping[str, Any] | None = None) -> JobSpec | Demand:
    """The Agent Manager's view of one running job: a `JobSpec` (agent-based) or a `Demand`
    on the outbound ports (agent-less; its maximum is the sum of its call handlers'
    `max_concurrent` in force — the job's run-time `pacing` changes over its strategy's,
    core/jobchanges.py — None if any is unlimited, 0 if it has no call handler)."""
    found = agent_handler(strategy)
    prio = _priority(priority)
    if found is None:
        in_force = effective(strategy, pacing or {})
        caps = [in_force[n].max_concurrent for n, h in strategy.handlers.items() if h.type == "call"]
        maximum = None if any(c is None for c in caps) else sum(caps)
        return Demand(job_id, "ports", prio, 0, maximum)
    _, handler = found
    skills = frozenset(s for h in strategy.handlers.values() if h.agent_based and h.agents
                       for s in h.agents.skills)
    needs = handler.agents
    return JobSpec(job_id, prio, needs.min if needs else 0, needs.max if needs else None, skills,
                   handler.pacing.mode, needs.wrap_up if needs else 60.0, campaign_id,
                   frozenset(needs.groups) if needs else frozenset())


def job_demands(rows: Iterable[Mapping[str, Any]], strategies: Mapping[int, Strategy]
                ) -> tuple[list[JobSpec], list[Demand]]:
    """Split running jobs (rows with id, campaign_id, priority, strategy_id and their run-time
    pacing) into agent-based specs and agent-less port demands; a job whose strategy is missing
    from `strategies` is skipped."""
    specs: list[JobSpec] = []
    ports: list[Demand] = []
    for r in rows:
        strategy = strategies.get(r["strategy_id"])
        if strategy is None:
            continue
        d = job_demand(r["id"], r.get("campaign_id"), r.get("priority", 5), strategy, r.get("pacing"))
        (specs if isinstance(d, JobSpec) else ports).append(d)
    return specs, ports
