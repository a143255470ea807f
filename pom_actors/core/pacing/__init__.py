"""Pacing: how many calls to place now. Pure, deterministic pacers behind one contract
(see docs/pacing.md): `make_pacer(config).decide(PacerSnapshot) -> PacingDecision`."""
from pom_actors.core.pacing.base import Pacer
from pom_actors.core.pacing.factory import MODES, make_pacer, parse_pacing_config
from pom_actors.core.pacing.snapshot import (EventKind, InboundQueue, PacerEvent, PacerSnapshot,
                                             PacingDecision, PreviewOffer, RuleCounters)

__all__ = ["MODES", "EventKind", "InboundQueue", "Pacer", "PacerEvent", "PacerSnapshot",
           "PacingDecision", "PreviewOffer", "RuleCounters", "make_pacer", "parse_pacing_config"]
