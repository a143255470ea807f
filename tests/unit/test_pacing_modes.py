"""Hand-made snapshots for the simple pacers: progressive, preview, time-based, skill-based,
and the factory that builds them from a strategy's config."""
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pom_actors.core.clock import ManualClock
from pom_actors.core.pacing import (MODES, EventKind, InboundQueue, PacerEvent, PacerSnapshot,
                                    PacingDecision, PreviewOffer, make_pacer)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def snap(**kw) -> PacerSnapshot:
    kw.setdefault("now", T0)
    return PacerSnapshot(**kw)


def test_snapshot_needs_aware_time_and_decision_cannot_be_negative():
    with pytest.raises(ValueError):
        PacerSnapshot(now=datetime(2026, 1, 5, 9, 0))
    with pytest.raises(ValueError):
        PacingDecision(-1, "no")


def test_port_room_counts_talking_calls():
    s = snap(talking=(10.0, 20.0), dialling=(1.0,), waiting=(0.5,), ports_cap=5)
    assert s.in_flight == 2
    assert s.port_room() == 1
    assert snap().port_room() is None


def test_progressive_keeps_ratio_times_ready_in_flight():
    p = make_pacer({"mode": "progressive", "ratio": 2.0})
    assert p.decide(snap(ready=(1.0, 2.0, 3.0))).dials == 6
    assert p.decide(snap(ready=(1.0, 2.0, 3.0), dialling=(1.0, 2.0), waiting=(0.1,))).dials == 3
    assert p.decide(snap(ready=(), talking=(5.0,))).dials == 0
    assert p.decide(snap(ready=(1.0,) * 10, ports_cap=4)).dials == 4


def test_preview_offers_dials_accepted_and_timed_out_and_releases_skips():
    p = make_pacer({"mode": "preview", "timeout_s": 30, "skip_codes": ["wrong_person", "skip"]})
    d = p.decide(snap(ready=(3.0, 1.0), ready_ids=("a1", "a2"), offers=(
        PreviewOffer("b1", "c1", shown_for=5.0, state="accepted"),
        PreviewOffer("b2", "c2", shown_for=31.0),                      # timed out: dial
        PreviewOffer("b3", "c3", shown_for=10.0),                      # still thinking
        PreviewOffer("b4", "c4", shown_for=4.0, state="skipped", skip_code="wrong_person"),
        PreviewOffer("b5", "c5", shown_for=4.0, state="skipped", skip_code="made_up"),
        PreviewOffer("b6", "c6", shown_for=2.0, state="cancelled"),
    )))
    assert d.offer_to == ("a1", "a2")
    assert d.dials == 2 and set(d.dial_for) == {"b1", "b2"}
    assert d.dial_for[0] == "b2"  # longest shown first
    assert dict(d.release) == {"b4": "wrong_person", "b5": "wrong_person", "b6": None}


def test_preview_timeout_can_withdraw_instead_of_dialling_and_respects_ports():
    p = make_pacer({"mode": "preview", "timeout_s": 20, "dial_on_timeout": False})
    d = p.decide(snap(offers=(PreviewOffer("b1", "c1", shown_for=20.0),)))
    assert d.dials == 0 and d.release == (("b1", "timeout"),)
    p = make_pacer({"mode": "preview", "timeout_s": None})
    offers = tuple(PreviewOffer(f"b{i}", f"c{i}", shown_for=float(i), state="accepted") for i in range(4))
    d = p.decide(snap(offers=offers + (PreviewOffer("x", "y", shown_for=1e6),), ports_cap=2))
    assert d.dials == 2 and d.dial_for == ("b3", "b2")


@pytest.mark.parametrize("rate,per,tick,span,expected", [
    (10, "minute", 1.0, 60, 10), (2, "second", 0.5, 60, 120), (90, "hour", 5.0, 3600, 90),
    (7, "minute", 0.25, 60, 7),
])
def test_time_based_places_exact_rate_over_a_simulated_span(rate, per, tick, span, expected):
    clock = ManualClock(T0)
    p = make_pacer({"mode": "time_based", "rate": rate, "per": per})
    total = 0
    while (clock.now() - T0).total_seconds() < span - 1e-9:
        total += p.decide(snap(now=clock.now())).dials
        clock.advance(tick)
    assert total == expected


def test_time_based_concurrency_cap_and_unplaced_dials_are_given_back():
    p = make_pacer({"mode": "time_based", "rate": 100, "per": "second", "max_concurrent": 3})
    assert p.decide(snap(now=T0)).dials == 1
    d = p.decide(snap(now=T0 + timedelta(seconds=1), dialling=(0.5,)))
    assert d.dials == 2  # 100 allowed by rate, 3 at once minus 1 in progress
    p = make_pacer({"mode": "time_based", "rate": 1, "per": "second"})
    assert p.decide(snap(now=T0)).dials == 1
    assert p.decide(snap(now=T0 + timedelta(seconds=0.5))).dials == 0
    again = snap(now=T0 + timedelta(seconds=0.6), events=(PacerEvent(EventKind.UNPLACED, count=1),))
    assert p.decide(again).dials == 1


def test_skill_based_has_hysteresis_and_releases_agents_to_inbound():
    p = make_pacer({"mode": "skill_based", "metric": "queue_length", "acquire_below": 2,
                    "release_above": 6})
    ready = (1.0, 2.0, 3.0)
    assert p.decide(snap(ready=ready, inbound=InboundQueue(length=1))).dials == 3
    assert p.decide(snap(ready=ready, inbound=InboundQueue(length=4))).dials == 3   # in band: keep
    d = p.decide(snap(ready=ready, inbound=InboundQueue(length=6)))
    assert d.dials == 0 and d.release_agents == 3
    assert p.decide(snap(ready=ready, inbound=InboundQueue(length=4))).dials == 0   # in band: keep
    assert p.decide(snap(ready=ready, inbound=InboundQueue(length=2))).dials == 3
    w = make_pacer({"mode": "skill_based", "metric": "expected_wait", "acquire_below": 5, "release_above": 40})
    assert w.decide(snap(ready=ready, inbound=InboundQueue(length=50, expected_wait=45.0))).dials == 0


def test_factory_knows_every_mode_and_refuses_bad_configs():
    extra = {"time_based": {"rate": 5}}
    for mode in MODES:  # nobody staffed: only the agent-less mode dials
        expected = 1 if mode == "time_based" else 0
        assert make_pacer({"mode": mode, **extra.get(mode, {})}).decide(snap()).dials == expected
    for bad in ({"mode": "telepathic"}, {"mode": "progressive", "ratio": -1},
                {"mode": "progressive", "ratoi": 2}, {"mode": "time_based"},
                {"mode": "skill_based", "acquire_below": 10, "release_above": 5},
                {"mode": "predictive", "target": 0.9}):
        with pytest.raises(ValidationError):
            make_pacer(bad)
