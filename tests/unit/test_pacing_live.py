"""A handler's pacer in the live system, without Ray or a database: by the agents of its share
under the time-based limits, the persisted window's counting and the outcomes it learns from,
the warm start's priors, and the AMD alarm."""
import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.core.pacing import RuleCounters, make_pacer
from pom_actors.core.pacing.live import HandlerPacer, UnsettledAnswers, aged, job_figures, put_through
from pom_actors.core.pacing.snapshot import EventKind, PacerEvent, PacerSnapshot
from pom_actors.core.pacing.window import BUCKET_S, Outcomes, Tally, bucket_of, warm_settings, window_since
from pom_actors.core.strategy import Pacing

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
OUTCOMES = Outcomes({"answer_human", "abandoned"}, {"abandoned"})


# -- the window and the outcomes ------------------------------------------------------------------
def test_outcomes_are_tallied_per_bucket_and_taught_to_the_pacer():
    at = T0 + timedelta(seconds=10)
    buckets = OUTCOMES.buckets([("answer_human", at, {"ring_s": 4.0, "talk_s": 30.0}),
                                ("abandoned", at, {"ring_s": 6.0}),
                                ("answer_machine", at + timedelta(seconds=BUCKET_S), {"ring_s": 9.0}),
                                ("busy", at, {"setup_s": 1.0})])
    assert buckets[bucket_of(at)] == Tally(dials=3, live=2, abandoned=1, answer_s=10.0, talk_s=30.0, talked=1)
    assert buckets[bucket_of(at + timedelta(seconds=BUCKET_S))] == Tally(dials=1, machine=1)
    assert buckets[bucket_of(at)].counters() == RuleCounters(2, 1, 0, 1)
    assert [e.kind for e in OUTCOMES.events("answer_human", {"ring_s": 4.0, "talk_s": 30.0})] == \
        [EventKind.LIVE, EventKind.TALK_END]
    assert OUTCOMES.events("busy", {"setup_s": 1.5}) == [PacerEvent(EventKind.BUSY, 1.5)]
    # a call whose answer was told at its notice: the live result once, at the answer
    assert OUTCOMES.answer({"ring_s": 4.0, "bridge_wait_s": 2.0}) == PacerEvent(EventKind.LIVE, 4.0)
    assert OUTCOMES.events("answer_human", {"ring_s": 4.0, "talk_s": 30.0}, answered=True) == \
        [PacerEvent(EventKind.TALK_END, 30.0)]
    assert OUTCOMES.events("abandoned", {"ring_s": 6.0}, answered=True) == [PacerEvent(EventKind.ABANDONED, 0.0)]
    assert OUTCOMES.events("delivered", {}) == []
    assert window_since(T0, 86400) == T0 - timedelta(days=1)
    with pytest.raises(ValueError):
        bucket_of(datetime(2026, 1, 1))


def test_answers_count_from_their_notice_until_the_window_read_after_they_settled():
    window = RuleCounters(100, 3, 5, 97)
    seen = UnsettledAnswers()
    assert seen.answered("a") and seen.answered("b") and seen.answered("c") and not seen.answered("a")
    seen.put_through(["a", "b", "x"])                    # c waits for an agent
    assert seen.counters(window) == RuleCounters(103, 3, 5, 99)
    seen.settle(["a", "c", "y"])                         # committed: the window counts them from its next read
    assert seen.told("a") and seen.counters(window) == RuleCounters(103, 3, 5, 99)
    seen.read()
    assert not seen.told("a") and seen.counters(RuleCounters(102, 4, 5, 98)) == RuleCounters(103, 4, 5, 99)
    seen.answered("d")
    seen.keep(["d"])                                     # b is no longer this manager's
    assert seen.counters(window) == RuleCounters(101, 3, 5, 97)


def test_warm_settings_take_the_campaigns_recent_outcomes_and_leave_explicit_priors():
    recent = Tally(dials=1000, live=250, answer_s=250 * 6.0, talk_s=200 * 90.0, talked=200)
    warm = warm_settings("predictive", {"target": 0.03, "prior_talk_s": 200.0}, recent)
    assert warm["prior_hit_rate"] == 0.25 and warm["prior_answer_s"] == 6.0 and warm["prior_hit_weight"] == 500
    assert warm["prior_talk_s"] == 200.0 and warm["target"] == 0.03
    settings = {"target": 0.03}
    assert warm_settings("predictive", settings, Tally(dials=50, live=20)) is settings
    assert warm_settings("progressive", settings, recent) is settings


# -- the handler's pacer --------------------------------------------------------------------------
def agents(ready=0, talking=0, at=T0) -> PacerSnapshot:
    return PacerSnapshot(now=at, ready=(5.0,) * ready, talking=(30.0,) * talking)


def test_a_progressive_handler_dials_per_ready_agent_under_its_limits():
    pacer = HandlerPacer(Pacing(mode="progressive", settings={"ratio": 1.5}, max_concurrent=5), managers=1)
    d = pacer.decide(T0, dialling=(1.0,), agents=agents(ready=4))
    assert d.dials == 4                                     # floor(1.5 x 4) - 1 = 5, the cap leaves 4
    assert "limit" in d.reason
    f = pacer.figures
    assert f["applied"] == "progressive" and f["dials"] == 4 and f["ready"] == 4 and f["lines_per_agent"] == 1.25
    assert pacer.decide(T0, dialling=(1.0,) * 5, agents=agents(ready=4)).dials == 0
    assert pacer.decide(T0, dialling=(), agents=None).dials == 0          # no agent snapshot: no dial
    assert pacer.figures["reason"].startswith("no agent snapshot")


def test_the_limit_is_given_back_what_the_agents_did_not_take():
    pacer = HandlerPacer(Pacing(mode="progressive", attempts_per_second=10), managers=2)
    assert pacer.decide(T0, (), agents(ready=0)).dials == 0
    later = T0 + timedelta(seconds=1)
    # 5/s share x 1 s + burst 5, none of it spent at the first tick: 10 of the 12 the agents ask
    assert pacer.decide(later, (), agents(ready=12, at=later)).dials == 10
    assert pacer.figures["rate"] == 5.0


def test_calls_with_an_agent_hold_lines_but_are_not_dials_that_may_still_be_answered():
    # 10 ready agents, 30 calls answered and put through: a predictive pacer sees no call in
    # flight (its agents' talking is in their snapshot), and dials 1:1 at shift start; under
    # max_concurrent the 30 calls still hold their lines.
    pacer = HandlerPacer(Pacing(mode="predictive"), managers=1)
    assert pacer.decide(T0, (), agents(ready=10, talking=30), connected=30).dials == 10
    assert pacer.figures["in_flight"] == 0 and pacer.figures["lines"] == 10 + 30
    capped = HandlerPacer(Pacing(mode="predictive", max_concurrent=35), managers=1)
    assert capped.decide(T0, (), agents(ready=10, talking=30), connected=30).dials == 5


def test_agents_put_through_since_the_fetch_are_taken_off_the_ready():
    view = PacerSnapshot(now=T0, ready=(9.0, 5.0, 1.0), ready_ids=("7", "3", "4"), talking=(30.0,))
    later = T0 + timedelta(seconds=2)
    snap, shown = put_through(view, [3, 99], later)          # 99: not of this share, or not shown ready
    assert snap.now == later and snap.ready == (11.0, 3.0) and snap.ready_ids == ("7", "4") and shown == {"3"}
    assert snap.talking == (0.0, 32.0)
    assert put_through(view, [], later) == (aged(view, later), set())
    snap, shown = put_through(view, [4, 7], later)
    assert snap.ready == (7.0,) and snap.ready_ids == ("3",) and shown == {"4", "7"}
    assert snap.talking == (0.0, 0.0, 32.0)


def test_the_handlers_ring_timeout_is_the_predictive_pacers_unless_the_strategy_sets_it():
    assert HandlerPacer(Pacing(mode="predictive"), 1, ring_timeout_s=40.0).config.ring_timeout_s == 40.0
    own = Pacing(mode="predictive", settings={"ring_timeout_s": 30.0})
    assert HandlerPacer(own, 1, ring_timeout_s=40.0).config.ring_timeout_s == 30.0
    assert HandlerPacer(Pacing(mode="progressive"), 1, ring_timeout_s=40.0).by_agents      # takes no such setting


def test_agent_ages_move_on_between_fetches():
    snap = aged(agents(ready=2, talking=1), T0 + timedelta(seconds=3))
    assert snap.ready == (8.0, 8.0) and snap.talking == (33.0,)


def test_preview_and_time_based_handlers_keep_the_time_based_pace():
    for mode in ("preview", "time_based"):
        pacer = HandlerPacer(Pacing(mode=mode, max_concurrent=2), managers=1)
        assert not pacer.by_agents and pacer.figures["applied"] == "time_based"
        assert pacer.decide(T0, (), None).dials == 2                         # the cap, whatever the agents


# -- the AMD alarm --------------------------------------------------------------------------------
def test_amd_false_positives_count_where_the_formula_counts_them_and_alone_stop_the_job():
    counters = RuleCounters(live_answered=100, abandoned=0, machine_detected=80)
    snap = PacerSnapshot(now=T0, ready=(5.0,) * 10, counters=counters)
    us = make_pacer({"mode": "predictive", "amd_false_positive_share": 0.05})
    assert us.decide(snap).alarm is None and us.losses(counters) == (100.0, 0.0)
    uk = make_pacer({"mode": "predictive", "rule": "uk_24h", "amd_false_positive_share": 0.05})
    d = uk.decide(snap)
    assert d.dials == 0 and "AMD false positives alone are 4.00%" in d.alarm and uk.losses(counters) == (100.0, 4.0)
    counted = make_pacer({"mode": "predictive", "amd_false_positive_share": 0.05, "count_amd_false_positives": True})
    assert counted.decide(snap).alarm is not None
    low = make_pacer({"mode": "predictive", "rule": "uk_24h", "amd_false_positive_share": 0.02})
    assert low.decide(snap).alarm is None and low.decide(snap).dials >= 10    # 1.6 %: dials on, safe at least
    few = dataclasses.replace(snap, counters=RuleCounters(10, 0, 80))
    assert uk.decide(few).alarm is None                                        # too few answers to judge
    handler = HandlerPacer(Pacing(mode="predictive", settings={"rule": "uk_24h", "amd_false_positive_share": 0.05}), 1)
    assert handler.decide(T0, (), None, counters).alarm is not None            # no agents known: the alarm stands




# -- a job's figures, from its managers' -------------------------------------------------------------
def test_a_jobs_figures_sum_its_managers_shares():
    a = HandlerPacer(Pacing(mode="progressive"), managers=2)
    b = HandlerPacer(Pacing(mode="progressive"), managers=2)
    a.decide(T0, (1.0,), agents(ready=2), RuleCounters(40, 1, 5))
    b.decide(T0, (), agents(ready=1, talking=1), RuleCounters(41, 1, 5))
    job = job_figures({"m0": {"call": a.figures}, "m1": {"call": b.figures}})["call"]
    assert job["dials"] == 1 + 1 and job["in_flight"] == 1 and job["agents"] == 4 and job["ready"] == 3
    assert job["lines"] == 2 + 2 and job["lines_per_agent"] == 1.0
    assert job["live_answered"] == 41 and job["abandon_rate"] == round(1 / 41, 6)     # the newest window read
    assert set(job["reasons"]) == {"m0", "m1"} and job["alarm"] is None
    assert job_figures({}) == {}
