"""Progressive pacing: a fixed number of lines per ready agent, nothing predicted."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from pom_actors.core.pacing.base import Pacer, PacerConfig
from pom_actors.core.pacing.snapshot import PacerSnapshot, PacingDecision, capped


class ProgressiveConfig(PacerConfig):
    mode: Literal["progressive"] = "progressive"
    ratio: float = Field(1.0, gt=0, le=50, description="calls kept in flight per ready agent")


class ProgressivePacer(Pacer):
    """Keep `ratio × ready agents` calls in flight (dialling, ringing or waiting for an agent).

    At ratio 1 every answered call has an idle agent reserved for it, so it never abandons;
    above 1 it trades abandons for agent time with no regard to either.
    """

    def __init__(self, config: ProgressiveConfig):
        self.config = config

    def decide(self, snapshot: PacerSnapshot) -> PacingDecision:
        self.observe(snapshot.events)
        want = math.floor(self.config.ratio * len(snapshot.ready) + 1e-9) - snapshot.in_flight
        dials = capped(want, snapshot)
        return PacingDecision(dials, f"{len(snapshot.ready)} ready x {self.config.ratio:g} "
                                    f"- {snapshot.in_flight} in flight")
