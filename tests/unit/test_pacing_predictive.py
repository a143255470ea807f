"""Predictive and cruise-control pacers on hand-made snapshots, and their estimators."""
from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.core.pacing import EventKind, PacerEvent, PacerSnapshot, RuleCounters, make_pacer
from pom_actors.core.pacing.estimators import AnswerModel, DurationModel, HitRateEstimator
from pom_actors.core.pacing.predictive import PredictiveConfig, expected_overflow

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
HEALTHY = RuleCounters(live_answered=2000, abandoned=20)          # 1 % so far: room to spare
AT_TARGET = RuleCounters(live_answered=2000, abandoned=60)        # exactly 3 %


def warmed(mode: str = "predictive", **cfg):
    """A pacer that has learnt a campaign over 200 s: 20 % of dials answered live after 8 s,
    the rest ringing out at 25 s, 60-120 s talk, 15-25 s wrap."""
    p = make_pacer({"mode": mode, **cfg})
    for k in range(200):
        events = [PacerEvent(EventKind.LIVE, 8.0), PacerEvent(EventKind.NO_ANSWER, 25.0)]
        events += [PacerEvent(EventKind.NO_ANSWER, 25.0)] * 3
        events += [PacerEvent(EventKind.TALK_END, 60.0 + (k % 60)), PacerEvent(EventKind.WRAP_END, 15.0 + (k % 10))]
        p.decide(PacerSnapshot(now=T0 + timedelta(seconds=k - 200), events=tuple(events), counters=HEALTHY))
    return p


def at(seconds: float, **kw) -> PacerSnapshot:
    return PacerSnapshot(now=T0 + timedelta(seconds=seconds), **kw)


def test_expected_overflow_matches_known_values():
    assert expected_overflow(0.0, 1.0) == pytest.approx(0.3989, abs=1e-4)
    assert expected_overflow(3.0, 0.0) == 3.0 and expected_overflow(-3.0, 0.0) == 0.0
    assert expected_overflow(-10.0, 1.0) < 1e-20


def test_no_agent_ready_or_about_to_be_means_no_dial():
    p = warmed()
    assert p.decide(at(60, counters=HEALTHY)).dials == 0                         # nobody staffed
    busy = at(61, talking=(1.0,) * 10, counters=HEALTHY)                         # all just started
    assert p.decide(busy).dials == 0


def test_dials_ahead_of_ready_agents_when_there_is_budget():
    p = warmed()
    d = p.decide(at(60, ready=(5.0,) * 10, talking=(85.0,) * 10, counters=HEALTHY))
    assert d.dials > 10, d.reason     # more than one call per ready agent at a 20 % hit rate


def test_abandon_at_target_throttles_to_calls_that_cannot_abandon():
    p = warmed()
    snap = dict(ready=(5.0,) * 10, talking=(85.0,) * 10, dialling=(3.0,) * 4)
    d = p.decide(at(60, counters=AT_TARGET, **snap))
    assert d.dials == 10 - 4 and "guard" in d.reason        # one reserved agent per call in flight
    assert warmed().decide(at(60, counters=HEALTHY, **snap)).dials > d.dials


def test_throttles_progressively_as_the_rate_nears_the_target():
    dials = []
    for abandoned in (0, 20, 40, 50):
        p = warmed()
        d = p.decide(at(60, ready=(5.0,) * 10, talking=(80.0,) * 20,
                        counters=RuleCounters(live_answered=2000, abandoned=abandoned)))
        dials.append(d.dials)
    assert dials == sorted(dials, reverse=True) and dials[0] > dials[-1]


def test_shift_start_without_history_dials_safely():
    p = make_pacer({"mode": "predictive"})
    d = p.decide(at(0, ready=(0.0,) * 5))
    assert d.dials == 5 and "guard" in d.reason


def test_uk_rule_counts_amd_false_positives_as_abandons():
    counters = RuleCounters(live_answered=2000, abandoned=40, machine_detected=1000)
    snap = dict(ready=(5.0,) * 10, talking=(85.0,) * 10)
    us = warmed(rule="us_30d").decide(at(60, counters=counters, **snap))
    uk = warmed(rule="uk_24h", amd_false_positive_share=0.03).decide(at(60, counters=counters, **snap))
    assert "guard" in uk.reason and uk.dials == 10 and us.dials > uk.dials
    assert PredictiveConfig(rule="uk_24h").window_seconds == 86400
    assert PredictiveConfig().window_seconds == 30 * 86400


def test_cruise_control_holds_a_service_level():
    ok = RuleCounters(live_answered=1000, within_service_level=990)
    bad = RuleCounters(live_answered=1000, within_service_level=940)
    snap = dict(ready=(5.0,) * 10, talking=(85.0,) * 10)
    good = warmed("cruise_control", service_level=0.95).decide(at(60, counters=ok, **snap))
    spent = warmed("cruise_control", service_level=0.95).decide(at(60, counters=bad, **snap))
    assert good.dials > 10 and spent.dials == 10


def test_same_inputs_same_decisions():
    seq = [at(i, ready=(float(i % 7),) * (i % 9), talking=(30.0 + i,) * 6, dialling=(1.0,) * (i % 4),
              counters=HEALTHY) for i in range(60)]
    a, b = warmed(), warmed()
    assert [a.decide(s).dials for s in seq] == [b.decide(s).dials for s in seq]


def test_hit_rate_estimator_settles_by_dial_time_and_follows_a_drop():
    est = HitRateEstimator(prior=0.5, prior_weight=20, fast_dials=200, slow_dials=2000, settle_s=35)
    t = 0.0
    for i in range(4000):                       # 30 % for a while
        est.add(i % 10 < 3, dialled_at=t)
        t += 0.5
    est.settle(t)
    assert est.value == pytest.approx(0.3, abs=0.03)
    for i in range(600):                        # then 10 %
        est.add(i % 10 == 0, dialled_at=t)
        t += 0.5
    est.settle(t + 35)
    assert est.value < 0.17
    before = est.value
    est.add(True, dialled_at=t + 35)            # not settled yet: no effect
    est.settle(t + 36)
    assert est.value == before


def test_no_live_answer_is_expected_of_a_call_past_the_ring_timeout():
    # Answers come within the 25 s timeout; machines are detected up to 8 s after answering.
    # A call still unresolved past the timeout (a machine being detected, an outcome not yet
    # collected) is no demand, whatever the ratio of the learnt distributions' tails says.
    model = AnswerModel(8.0, 25.0)
    for k in range(300):
        model.add_live(2.0 + k % 23)
        model.add_other(25.0 if k % 3 else 5.0 + k % 25)
    q = model.demand_tables(0.3, (6.0, 10.0, 27.0))
    assert q[:, :25].max() > 0.1
    assert q[:, 25:].max() == 0.0
    p = warmed()
    ringing = dict(ready=(5.0,) * 10, talking=(85.0,) * 10, counters=HEALTHY)
    stale = p.decide(at(60, dialling=(26.0,) * 20, **ringing)).dials
    assert stale == warmed().decide(at(60, **ringing)).dials


def test_duration_model_prior_then_data():
    m = DurationModel(prior_mean=100.0, min_samples=5)
    tables = m.finish_tables((10.0,))
    assert tables[0, 0] == pytest.approx(1 - 2.718281828 ** -0.1, abs=1e-3)
    for x in (50.0, 60.0, 70.0, 80.0, 90.0):
        m.add(x)
    t = m.finish_tables((10.0, 100.0))
    assert t[1, 0] > 0.8 and t[0, 0] < t[1, 0]
    assert (t >= 0).all() and (t <= 1).all()
