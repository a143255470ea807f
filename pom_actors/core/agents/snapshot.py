"""The pacer's view of one job's agents: a `PacerSnapshot` built from agent states.

The Agent Manager knows the agents; the Campaign Manager knows its dials in flight and the
answered calls waiting, and the rule window's counters. `pacer_snapshot` takes the agents of
one job and whatever the caller adds, and returns the snapshot the pacers take
(`core/pacing/snapshot.py`):

* `ready`    — ready agents: seconds since they became ready, the longest-waiting first
               (`ready_ids` aligned with it);
* `talking`  — agents on a call, and agents *reserved* for an answered call (their call is
               live: it is about to be bridged), seconds since the reservation or connect;
* `wrapping` — agents in after-call work: seconds into it;
* `reserved` — agents held by a preview offer (`offered` ids), which are neither ready nor
               busy for pacing; not-ready and logged-out agents are not counted at all.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..pacing.snapshot import InboundQueue, PacerEvent, PacerSnapshot, PreviewOffer, RuleCounters
from .state import Agent, AgentState

S = AgentState


def _age(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def pacer_snapshot(agents: Iterable[Agent], now: datetime, *, offered: Iterable[int] = (),
                   dialling: tuple[float, ...] = (), waiting: tuple[float, ...] = (),
                   counters: RuleCounters | None = None, ports_cap: int | None = None,
                   events: tuple[PacerEvent, ...] = (), offers: tuple[PreviewOffer, ...] = (),
                   inbound: InboundQueue | None = None) -> PacerSnapshot:
    offered = set(offered)
    ready: list[tuple[float, int]] = []
    talking, wrapping = [], []
    held = 0
    for a in agents:
        if a.state == S.READY:
            if a.id in offered:
                held += 1
            else:
                ready.append((_age(now, a.since), a.id))
        elif a.state in (S.ON_CALL, S.RESERVED):
            talking.append(_age(now, a.since))
        elif a.state == S.WRAP_UP:
            wrapping.append(_age(now, a.since))
    ready.sort(key=lambda r: (-r[0], r[1]))
    return PacerSnapshot(now=now, ready=tuple(r[0] for r in ready), talking=tuple(sorted(talking)),
                         wrapping=tuple(sorted(wrapping)), reserved=held, dialling=tuple(dialling),
                         waiting=tuple(waiting), counters=counters or RuleCounters(), ports_cap=ports_cap,
                         events=tuple(events), ready_ids=tuple(str(r[1]) for r in ready),
                         offers=tuple(offers), inbound=inbound)
