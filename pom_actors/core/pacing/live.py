"""One call handler's pacing inside a Campaign Manager: the decision of the live system.

A manager of an agent-based job paces by agents: its pacer (the handler's `pacing.mode` with
its settings) sees this manager's **share** of the job's agents — the Agent Manager gives
manager `index` of `managers` every `managers`-th attached agent by id
(`AgentManagerService.snapshot`), as `time_based.manager_share` gives it a share of a rate —
plus the manager's own dials in flight, the campaign's persisted rule window and the outcomes
it settled since the last tick. The shares are disjoint, so the managers of one job together
never hold more lines than one pacer over all the agents would. The handler's
`attempts_per_second` and `max_concurrent` hold in every mode: the smaller grant wins and the
rest of the time-based allowance is given back.

The agents' part is fetched from the Agent Manager now and then (one Ray call per manager per
`AGENT_REFRESH_S`, never per contact); between two fetches its ages are moved on by the time
passed (`aged`) and the agents the manager put its calls through to are taken off the ready
(`put_through`): its answered calls leave its dials in flight at once, so its agents must too.
No fetch yet, or a failed one: no agent, no dial. The campaign's rule window is read now and
then too, and counts a call when it settles; the answers the manager has seen since count from
their notice (`UnsettledAnswers`).

A preview handler keeps its time-based limits here (`applied` says so): its cards go to agents
before any dial, one per ready agent without a card (core/agents/preview.py, the manager's
`_preview`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..strategy import Pacing
from .base import Pacer
from .factory import make_pacer, parse_pacing_config
from .predictive import CruiseControlConfig, LookaheadPacer, PredictiveConfig
from .snapshot import EventKind, PacerEvent, PacerSnapshot, PacingDecision, RuleCounters
from .time_based import manager_share
from .window import US_WINDOW_S, Tally, warm_settings

AGENT_REFRESH_S = 0.5       # real seconds between two fetches of the agents' snapshot
LIVE_MODES = frozenset({"progressive", "predictive", "cruise_control", "skill_based"})
LOOKAHEAD_MODES = frozenset({"predictive", "cruise_control"})


def aged(agents: PacerSnapshot, now: datetime) -> PacerSnapshot:
    """The agents' part of a snapshot taken earlier, as it stands at `now` (ages moved on)."""
    dt = (now - agents.now).total_seconds()
    if dt <= 0:
        return agents
    later = dt.__add__
    return dataclasses.replace(agents, now=now, ready=tuple(map(later, agents.ready)),
                               talking=tuple(map(later, agents.talking)),
                               wrapping=tuple(map(later, agents.wrapping)))


def put_through(agents: PacerSnapshot, agent_ids: Iterable[int], now: datetime) -> tuple[PacerSnapshot, set[str]]:
    """The agents' part at `now` once the manager has put calls through to `agent_ids` since it
    was fetched: those still shown ready are talking now (and returned). Without this the pacer
    would see, until the next fetch, the calls gone from its dials in flight and their agents
    still ready — and dial for agents that are already busy. Each agent is found by a C-speed
    `index` (mostly at the head: the longest-ready agent is reserved first) and cut out of a
    copy, not by a walk in Python of thousands of ready agents at every bridged batch."""
    ids = agents.ready_ids
    at: dict[int, str] = {}
    for a in {str(a) for a in agent_ids}:
        try:
            at[ids.index(a)] = a
        except ValueError:                   # not of this share, or not shown ready
            pass
    agents = aged(agents, now)
    if not at:
        return agents, set()
    ready, ready_ids = list(agents.ready), list(ids)
    for i in sorted(at, reverse=True):
        del ready[i], ready_ids[i]
    return dataclasses.replace(agents, ready=tuple(ready), ready_ids=tuple(ready_ids),
                               talking=tuple(sorted(agents.talking + (0.0,) * len(at)))), set(at.values())


class UnsettledAnswers:
    """The live answers a Campaign Manager was told of (a person answered one of its calls)
    that its last read of the campaign's rule window does not count yet.

    The store counts a call in the window when it settles: one put through to an agent a whole
    talk after its answer, an abandoned one at once. Read alone, the window showed the pacer
    each abandon at once and the answers around it a talk later, a rate too high (it throttled
    its dialling: bench/agent_job.py). So an answer counts from its notice (put through to an
    agent: within the service level too) until the first read of the window after it settled.
    """

    def __init__(self) -> None:
        self.calls: dict[str, bool] = {}        # call -> put through to an agent
        self.settled: set[str] = set()          # of those, settled since the last read

    def answered(self, call: str) -> bool:
        """Count `call`'s answer from now; False if it is counted already."""
        if call in self.calls:
            return False
        self.calls[call] = False
        return True

    def told(self, call: str) -> bool:
        """Whether `call`'s answer is counted here."""
        return call in self.calls

    def put_through(self, calls: Iterable[str]) -> None:
        for call in calls:
            if call in self.calls:
                self.calls[call] = True

    def settle(self, calls: Iterable[str]) -> None:
        """`calls` settled (committed): the next read of the window counts them."""
        self.settled.update(c for c in calls if c in self.calls)

    def read(self) -> None:
        """The window was read: it counts the calls settled before."""
        for call in self.settled:
            del self.calls[call]
        self.settled.clear()

    def keep(self, in_flight: Iterable[str]) -> None:
        """Forget the calls neither in flight here nor settled (a lost shard: their new holder
        settles them)."""
        keep = set(in_flight) | self.settled
        self.calls = {c: v for c, v in self.calls.items() if c in keep}

    def counters(self, window: RuleCounters) -> RuleCounters:
        """The window's counters with these answers."""
        return dataclasses.replace(window, live_answered=window.live_answered + len(self.calls),
                                   within_service_level=window.within_service_level + sum(self.calls.values()))


def window_seconds(config: Any) -> float:
    """The span of the rule window a mode's counters cover (predictive: its rule or
    `window_s`; cruise control: its `window_s`; the others: the US 30 days, for the figures)."""
    if isinstance(config, PredictiveConfig):
        return config.window_seconds
    if isinstance(config, CruiseControlConfig):
        return config.window_s
    return US_WINDOW_S


class HandlerPacer:
    """A handler's pacer in one of `managers` managers; `figures` is what the API and the
    metrics show of it (dial level, lines per agent, the window's abandon rate, the reason).
    `ring_timeout_s`: the handler's, the predictive pacers' `ring_timeout_s` unless the
    strategy sets that (no live answer is expected of a call older than it)."""

    def __init__(self, pacing: Pacing, managers: int, recent: Tally | None = None,
                 ring_timeout_s: float | None = None):
        self.mode = pacing.mode
        self.by_agents = pacing.mode in LIVE_MODES
        share = manager_share(pacing.attempts_per_second, pacing.max_concurrent, managers)
        self.limit: Pacer = make_pacer(share)
        self.pacer: Pacer | None = None
        self.config: Any = None
        warm = False
        if self.by_agents:
            settings = warm_settings(pacing.mode, pacing.settings, recent or Tally())
            warm = settings is not pacing.settings
            if ring_timeout_s is not None and pacing.mode in LOOKAHEAD_MODES:
                settings = {"ring_timeout_s": ring_timeout_s, **settings}    # the handler's, unless set
            self.config = parse_pacing_config({**settings, "mode": pacing.mode})
            self.pacer = make_pacer({**settings, "mode": pacing.mode})
        self.window_s = window_seconds(self.config)
        self.figures: dict[str, Any] = {
            "mode": pacing.mode, "applied": pacing.mode if self.by_agents else "time_based",
            "rate": share["rate"] if pacing.attempts_per_second else None,
            "max_concurrent": share["max_concurrent"], "granted": 0, "in_flight": 0, "dials": 0,
            "agents": 0, "ready": 0, "lines": 0, "lines_per_agent": None, "window_s": self.window_s,
            "live_answered": 0, "abandoned": 0, "machine_detected": 0, "abandon_rate": None,
            "reason": "not asked yet", "alarm": None, "warm_start": warm}

    def observe(self, events: Iterable[PacerEvent]) -> None:
        """Dials given back (UNPLACED) return to the time-based allowance."""
        self.limit.observe(events)

    def decide(self, now: datetime, dialling: tuple[float, ...], agents: PacerSnapshot | None = None,
               counters: RuleCounters | None = None, events: tuple[PacerEvent, ...] = (),
               waiting: tuple[float, ...] = (), connected: int = 0) -> PacingDecision:
        """Dials to start now. `dialling`: ages of this manager's calls of the handler in
        flight, not yet answered; `waiting`: seconds each of its answered calls has waited for
        an agent (lines too); `connected`: its answered calls no longer waiting (with an agent
        until they end): they hold lines under `max_concurrent`, but an agent pacer sees them
        as its agents' talking, never as dials that may still be answered; `agents`: its share
        of the job's agents (None: not known); `counters`: the campaign's rule window;
        `events`: outcomes settled since the last call."""
        counters = counters or RuleCounters()
        limit = self.limit.decide(PacerSnapshot(now=now, dialling=dialling + waiting + (0.0,) * connected))
        decision = limit
        snap = None
        if self.pacer is not None:
            if agents is None:          # no dial; an alarm of the window stands all the same
                alarm = self.pacer.alarm(counters) if isinstance(self.pacer, LookaheadPacer) else None
                decision = PacingDecision(0, alarm or "no agent snapshot from the Agent Manager", alarm=alarm)
                self.pacer.observe(events)
            else:
                snap = dataclasses.replace(aged(agents, now), dialling=dialling, waiting=waiting, counters=counters,
                                           events=tuple(events))
                decision = self.pacer.decide(snap)
            if decision.dials > limit.dials:
                decision = dataclasses.replace(decision, dials=limit.dials,
                                               reason=f"{decision.reason}; limit {limit.reason}")
            if limit.dials > decision.dials:
                self.limit.observe([PacerEvent(EventKind.UNPLACED, count=limit.dials - decision.dials)])
        self._record(decision, dialling + waiting, snap, counters)
        return decision

    def _record(self, decision: PacingDecision, dialling: tuple[float, ...], snap: PacerSnapshot | None,
                counters: RuleCounters) -> None:
        f = self.figures
        staffed = snap.staffed if snap is not None else 0
        lines = len(dialling) + decision.dials + (len(snap.talking) if snap is not None else 0)
        f.update(dials=decision.dials, in_flight=len(dialling), lines=lines, reason=decision.reason, alarm=decision.alarm,
                 agents=staffed, ready=len(snap.ready) if snap is not None else 0,
                 lines_per_agent=round(lines / staffed, 3) if staffed else None,
                 live_answered=counters.live_answered, abandoned=counters.abandoned,
                 machine_detected=counters.machine_detected,
                 abandon_rate=self.abandon_rate(counters))

    def abandon_rate(self, counters: RuleCounters) -> float | None:
        """The window's abandon rate as the pacer's formula counts it (None: no answer yet)."""
        if not counters.live_answered:
            return None
        losses = getattr(self.pacer, "losses", None)
        lost = losses(counters)[1] if losses else counters.abandoned
        return round(lost / counters.live_answered, 6)


def job_figures(managers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One job's pacing per handler from its managers' figures (`{manager: {handler: figures}}`):
    dials, lines in flight, agents and lines summed; lines per agent over the sum; the window's
    counts and rate (the campaign's, the same for every manager: the newest read); each
    manager's last reason; an alarm if any manager has one."""
    out: dict[str, dict[str, Any]] = {}
    for manager, handlers in sorted(managers.items()):
        for handler, f in sorted(handlers.items()):
            job = out.setdefault(handler, {"mode": f.get("mode"), "applied": f.get("applied"), "dials": 0,
                                           "in_flight": 0, "agents": 0, "ready": 0, "lines": 0, "granted": 0,
                                           "window_s": f.get("window_s"), "live_answered": 0, "abandoned": 0,
                                           "machine_detected": 0, "abandon_rate": None, "alarm": None,
                                           "reasons": {}})
            for key in ("dials", "in_flight", "agents", "ready", "lines", "granted"):
                job[key] += f.get(key) or 0
            if (f.get("live_answered") or 0) >= job["live_answered"]:
                for key in ("live_answered", "abandoned", "machine_detected", "abandon_rate"):
                    job[key] = f.get(key, job[key])
            job["alarm"] = job["alarm"] or f.get("alarm")
            job["reasons"][manager] = f.get("reason")
    for job in out.values():
        job["lines_per_agent"] = round(job["lines"] / job["agents"], 3) if job["agents"] else None
    return out
