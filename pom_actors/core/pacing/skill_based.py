"""Skill-based pacing: outbound uses the blended agents only while the inbound queue is calm."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from pom_actors.core.pacing.base import Pacer, PacerConfig
from pom_actors.core.pacing.snapshot import PacerSnapshot, PacingDecision, capped


class SkillBasedConfig(PacerConfig):
    mode: Literal["skill_based"] = "skill_based"
    metric: Literal["queue_length", "expected_wait"] = "expected_wait"
    acquire_below: float = Field(10.0, ge=0, description="outbound takes agents when the metric is at or below this")
    release_above: float = Field(30.0, ge=0, description="outbound gives agents back when the metric is at or above this")
    ratio: float = Field(1.0, gt=0, le=10, description="calls in flight per ready agent while outbound holds agents")

    @model_validator(mode="after")
    def _hysteresis(self) -> "SkillBasedConfig":
        if self.release_above <= self.acquire_below:
            raise ValueError("release_above must be greater than acquire_below")
        return self


class SkillBasedPacer(Pacer):
    """Two thresholds with hysteresis so agents are not flipped between queues every tick:
    at or above `release_above` outbound stops and hands its ready agents to inbound; at or
    below `acquire_below` it takes them again and dials progressively; in between it keeps its
    last state. No inbound queue in the snapshot means nothing to defer to."""

    def __init__(self, config: SkillBasedConfig):
        self.config = config
        self._active: bool | None = None

    def decide(self, snapshot: PacerSnapshot) -> PacingDecision:
        self.observe(snapshot.events)
        q = snapshot.inbound
        value = 0.0 if q is None else (q.length if self.config.metric == "queue_length" else q.expected_wait)
        if value >= self.config.release_above:
            self._active = False
        elif value <= self.config.acquire_below or self._active is None:
            self._active = True
        if not self._active:
            return PacingDecision(0, f"inbound {self.config.metric}={value:g} >= release threshold",
                                  release_agents=len(snapshot.ready))
        want = math.floor(self.config.ratio * len(snapshot.ready) + 1e-9) - snapshot.in_flight
        return PacingDecision(capped(want, snapshot), f"inbound {self.config.metric}={value:g}: outbound holds agents")
