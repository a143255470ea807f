"""Time-based pacing for agent-less jobs (notifications, SMS, e-mail): N attempts per unit of
time, never more than a number at once."""
from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import Field

from pom_actors.core.pacing.base import Pacer, PacerConfig
from pom_actors.core.pacing.snapshot import (EventKind, PacerEvent, PacerSnapshot,
                                             PacingDecision, capped)

_UNIT_S = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


class TimeBasedConfig(PacerConfig):
    mode: Literal["time_based"] = "time_based"
    rate: float = Field(..., gt=0, description="attempts per `per`")
    per: Literal["second", "minute", "hour"] = "minute"
    max_concurrent: int | None = Field(None, ge=1, description="attempts in progress at once")
    burst: int = Field(1, ge=1, description="attempts allowed at the very first tick")


class TimeBasedPacer(Pacer):
    """Exact rate over any span: by time t since the first tick, at most
    floor(rate × t) + burst attempts in total. Unplaced dials (reported with an UNPLACED event)
    are given back, so a short list does not eat the allowance."""

    def __init__(self, config: TimeBasedConfig):
        self.config = config
        self._per_s = config.rate / _UNIT_S[config.per]
        self._start: datetime | None = None
        self._placed = 0

    def observe(self, events: Iterable[PacerEvent]) -> None:
        for ev in events:
            if ev.kind is EventKind.UNPLACED:
                self._placed = max(0, self._placed - ev.count)

    def decide(self, snapshot: PacerSnapshot) -> PacingDecision:
        self.observe(snapshot.events)
        if self._start is None:
            self._start = snapshot.now
        elapsed = max(0.0, (snapshot.now - self._start).total_seconds())
        allowed = math.floor(self._per_s * elapsed + 1e-9) + self.config.burst - self._placed
        busy = snapshot.in_flight + len(snapshot.talking)
        reason = f"{self.config.rate:g}/{self.config.per}"
        if self.config.max_concurrent is not None and allowed > self.config.max_concurrent - busy:
            allowed = self.config.max_concurrent - busy
            reason += f", {busy} of {self.config.max_concurrent} concurrent"
        dials = capped(allowed, snapshot)
        self._placed += dials
        return PacingDecision(dials, reason)


UNBOUNDED_RATE = 1_000_000


def manager_share(attempts_per_second: float | None, max_concurrent: int | None, managers: int) -> dict:
    """One manager's time-based pacing config for a handler whose job is shared by `managers`
    managers: the rate and the concurrency cap split evenly (unset = unbounded)."""
    per_manager = attempts_per_second / managers if attempts_per_second else UNBOUNDED_RATE
    return {"mode": "time_based", "rate": per_manager, "per": "second",
            "max_concurrent": math.ceil(max_concurrent / managers) if max_concurrent else None,
            "burst": max(1, math.ceil(per_manager)) if attempts_per_second else UNBOUNDED_RATE}
