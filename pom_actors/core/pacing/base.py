"""What every pacer is: `decide(snapshot) -> PacingDecision`, and `observe(events)` to learn."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from pom_actors.core.pacing.snapshot import PacerEvent, PacerSnapshot, PacingDecision


class PacerConfig(BaseModel):
    """Common base of the pacing configs: unknown keys are refused, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Pacer(ABC):
    """A pacer is deterministic given its config, the snapshots it has seen and their times.

    `decide` first learns from `snapshot.events` (through `observe`), then answers. Callers
    that learn of outcomes between ticks may call `observe` themselves; an event must reach a
    pacer once only, by one of the two routes.
    """

    @abstractmethod
    def decide(self, snapshot: PacerSnapshot) -> PacingDecision:
        """How many dials to place now (and, for preview, for whom)."""

    def observe(self, events: Iterable[PacerEvent]) -> None:
        """Learn from outcomes. Pacers that do not learn have nothing to do here."""
