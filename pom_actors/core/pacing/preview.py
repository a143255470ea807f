"""Preview pacing: the agent sees the contact first; the call follows acceptance or a timeout."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from pom_actors.core.pacing.base import Pacer, PacerConfig
from pom_actors.core.pacing.snapshot import PacerSnapshot, PacingDecision, capped


class PreviewConfig(PacerConfig):
    mode: Literal["preview"] = "preview"
    timeout_s: float | None = Field(30.0, gt=0, le=3600, description="seconds an offer may stay unanswered; None = no timeout")
    dial_on_timeout: bool = Field(True, description="on timeout dial the contact (True) or settle it as `timeout` (False)")
    skip_codes: tuple[str, ...] = Field(("skipped",), min_length=1, max_length=32,
                                        description="completion codes an agent may skip with (the strategy's)")


class PreviewPacer(Pacer):
    """Offers a contact to every ready agent; dials accepted offers and, on timeout, either
    dials or withdraws the offer; releases skipped (with their code) and cancelled offers.
    A skip with a code outside `skip_codes` is released with the first allowed code, so the
    manager always records a known completion code. If the port cap is reached, the offers
    that have waited longest are dialled first and the rest wait for the next tick."""

    def __init__(self, config: PreviewConfig):
        self.config = config

    def decide(self, snapshot: PacerSnapshot) -> PacingDecision:
        self.observe(snapshot.events)
        cfg = self.config
        due: list[tuple[float, str]] = []
        release: list[tuple[str, str | None]] = []
        for offer in snapshot.offers:
            if offer.state == "accepted":
                due.append((offer.shown_for, offer.agent_id))
            elif offer.state == "skipped":
                code = offer.skip_code if offer.skip_code in cfg.skip_codes else cfg.skip_codes[0]
                release.append((offer.agent_id, code))
            elif offer.state == "cancelled":
                release.append((offer.agent_id, None))
            elif cfg.timeout_s is not None and offer.shown_for >= cfg.timeout_s:
                if cfg.dial_on_timeout:
                    due.append((offer.shown_for, offer.agent_id))
                else:
                    release.append((offer.agent_id, "timeout"))
        due.sort(reverse=True)
        n = capped(len(due), snapshot)
        dial_for = tuple(agent for _, agent in due[:n])
        return PacingDecision(n, f"{len(snapshot.ready_ids)} offers, {n} dials, {len(release)} released",
                              offer_to=snapshot.ready_ids, dial_for=dial_for, release=tuple(release))
