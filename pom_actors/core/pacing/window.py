"""The nuisance rule's window as the live system keeps it, and what a pacer learns from outcomes.

Abandon counters must outlive a job and a manager (US: 30 days per campaign; UK: 24 hours), so
a manager adds every settled call outcome to per-campaign **buckets** of `BUCKET_S` seconds of
business time (`store/pacing.py`, table `pacing_counters`), in the transaction that settles it;
a pacer's `RuleCounters` are the sum of the buckets of its window, to the bucket. The same
buckets carry what a new job's pacer starts from (`warm_settings`): dials, live answers, their
answer and talk times.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from .snapshot import EventKind, PacerEvent, RuleCounters

BUCKET_S = 300
US_WINDOW_S = 30 * 86400.0
WARM_WINDOW_S = 86400.0          # "recent statistics" of a campaign: the last 24 hours
WARM_MIN_DIALS = 100             # fewer dials than this: the priors of the strategy stay
MACHINE_CODES = frozenset({"answer_machine"})
_RESULTS = {"busy": EventKind.BUSY, "no_answer": EventKind.NO_ANSWER, "invalid_number": EventKind.INVALID,
            "fax": EventKind.INVALID, "network_refusal": EventKind.INVALID, "call_failed": EventKind.INVALID}
_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Tally:
    """Call outcomes of one campaign over a span: dials that got a result, live answers (a
    person, or an abandon), abandons, machine detections, and the sums of the live answers'
    dial-to-answer seconds and of the talk seconds of those that talked (`talked` of them);
    for a warm start also the agents' wrap-up seconds, hangup to disposition (`wrapped` of
    them; from the agents' log, not the buckets: `store.pacing.recent_wraps`)."""

    dials: int = 0
    live: int = 0
    abandoned: int = 0
    machine: int = 0
    answer_s: float = 0.0
    talk_s: float = 0.0
    talked: int = 0
    wrap_s: float = 0.0
    wrapped: int = 0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Tally)))

    def counters(self) -> RuleCounters:
        """The rule's counters (a live answer not abandoned was connected in time)."""
        return RuleCounters(self.live, self.abandoned, self.machine, self.live - self.abandoned)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Tally)}


def bucket_of(at: datetime) -> datetime:
    """The start of the bucket `at` falls in."""
    if at.tzinfo is None:
        raise ValueError(f"bucket times must be timezone-aware, got naive {at!r}")
    s = (at - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=s - s % BUCKET_S)


def window_since(now: datetime, window_s: float) -> datetime:
    """The first bucket of the window ending at `now` (the window is read to the bucket)."""
    return bucket_of(now - timedelta(seconds=window_s))


class Outcomes:
    """How one strategy's completion codes count: `live` (a person answered: human contact or
    an abandon), `abandon` (counts as abandoned), machine detections."""

    def __init__(self, live: Iterable[str], abandon: Iterable[str], machine: Iterable[str] = MACHINE_CODES):
        self.live, self.abandon, self.machine = frozenset(live), frozenset(abandon), frozenset(machine)

    def tally(self, code: str, details: dict[str, Any]) -> Tally:
        """One call outcome as a `Tally`."""
        if code in self.live:
            talk = details.get("talk_s") if code not in self.abandon else None
            return Tally(1, 1, int(code in self.abandon), 0, float(details.get("ring_s") or 0.0),
                         float(talk or 0.0), int(talk is not None))
        return Tally(1, machine=int(code in self.machine))

    def buckets(self, outcomes: Iterable[tuple[str, datetime, dict[str, Any]]]) -> dict[datetime, Tally]:
        """Outcomes (code, business time, details) added up per bucket."""
        out: dict[datetime, Tally] = {}
        for code, at, details in outcomes:
            b = bucket_of(at)
            out[b] = out.get(b, Tally()) + self.tally(code, details)
        return out

    @staticmethod
    def answer(details: dict[str, Any]) -> PacerEvent:
        """What a pacer learns from a person answering, told at the answer's notice (a call to
        put through to an agent; its outcome comes a whole talk later): the dial's live
        result, `ring_s` after it. A hit rate learnt at the call's end instead credits the
        answer to a later dial second and lags a talk behind the other results."""
        return PacerEvent(EventKind.LIVE, float(details.get("ring_s") or 0.0))

    def events(self, code: str, details: dict[str, Any], answered: bool = False) -> list[PacerEvent]:
        """What a pacer learns from one call outcome (the voice media reports a call when it
        ends: the answer time is `ring_s`, a person's talk `talk_s`); `answered`: its live
        result was told at the answer (`answer`), not again."""
        ring = float(details.get("ring_s") or 0.0)
        if code in self.live:
            out = [] if answered else [PacerEvent(EventKind.LIVE, ring)]
            if code in self.abandon:
                out.append(PacerEvent(EventKind.ABANDONED, 0.0))
            elif details.get("talk_s") is not None:
                out.append(PacerEvent(EventKind.TALK_END, float(details["talk_s"])))
            return out
        if code in self.machine:
            return [PacerEvent(EventKind.MACHINE, ring)]
        kind = _RESULTS.get(code)
        return [PacerEvent(kind, ring or float(details.get("setup_s") or 0.0))] if kind else []


def warm_settings(mode: str, settings: dict[str, Any], recent: Tally) -> dict[str, Any]:
    """A predictive or cruise-control pacer's settings with its priors taken from its
    campaign's recent outcomes (`recent`: the last `WARM_WINDOW_S`), so a new job starts
    from what the campaign has shown instead of the strategy's defaults; a prior the strategy
    sets itself stays. With fewer than `WARM_MIN_DIALS` dials nothing is learnt."""
    if mode not in ("predictive", "cruise_control") or recent.dials < WARM_MIN_DIALS:
        return settings
    priors: dict[str, Any] = {"prior_hit_rate": min(0.99, max(0.01, recent.live / recent.dials)),
                              "prior_hit_weight": float(min(recent.dials, 500))}
    if recent.live >= 20 and recent.answer_s > 0:
        priors["prior_answer_s"] = recent.answer_s / recent.live
    if recent.talked >= 20 and recent.talk_s > 0:
        priors["prior_talk_s"] = recent.talk_s / recent.talked
    if recent.wrapped >= 20 and recent.wrap_s > 0:
        priors["prior_wrap_s"] = recent.wrap_s / recent.wrapped
    return {**priors, **settings}
