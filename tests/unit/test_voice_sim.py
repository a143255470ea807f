import math
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pydantic
import pytest

from pom_actors.core.clock import ManualClock
from pom_actors.core.orders import Order
from pom_actors.media.voice_sim import CODES, VoiceProfile, VoiceSimulator, sampler

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def calls(n: int, ring_timeout: float = 15.0, start: int = 0) -> list[Order]:
    return [Order(f"{i}.1", 1, i % 4, 1, "call", "+14155550100", "mgr", ring_timeout=ring_timeout)
            for i in range(start, start + n)]


def run(profile: VoiceProfile, orders: list[Order]) -> dict:
    clock = ManualClock(T0)
    sim = VoiceSimulator(profile, clock)
    sim.place(orders, T0)
    return {o.attempt_id: (o.code, o.at, o.details) for o in sim.due(T0 + timedelta(days=1))}


def test_default_profile_is_valid_and_sums_to_one():
    assert math.isclose(sum(VoiceProfile().probabilities()), 1.0)


@pytest.mark.parametrize("bad", [
    {"busy": 0.2},  # sums to 1.1
    {"ring_s": {"dist": "gamma", "k": 2}},
    {"talk_s": {"dist": "uniform", "low": 5}},
    {"talk_s": {"dist": "uniform", "low": 5, "high": 1}},
    {"machine_s": {"dist": "fixed", "value": -1}},
    {"setup_s": {"dist": "exponential", "mean": 1, "min": 3, "max": 2}},
])
def test_profile_validation_refuses_bad_input(bad):
    with pytest.raises(pydantic.ValidationError):
        VoiceProfile(**bad)


def test_samplers_follow_their_specs():
    assert sampler({"dist": "fixed", "value": 4})(0.3) == 4
    assert sampler({"dist": "uniform", "low": 2, "high": 6})(0.25) == 3
    assert math.isclose(sampler({"dist": "exponential", "mean": 10})(1 - math.exp(-1)), 10)
    assert math.isclose(sampler({"dist": "lognormal", "median": 8, "sigma": 0.5})(0.5), 8)
    assert sampler({"dist": "lognormal", "median": 8, "sigma": 2, "max": 20})(0.999) == 20


def test_outcomes_are_deterministic_per_attempt_id_and_seed():
    orders = calls(500)
    shuffled = orders[:]
    random.Random(1).shuffle(shuffled)
    first = run(VoiceProfile(seed=5), orders)
    # another simulator, another batch order, split in two: the same fates
    clock = ManualClock(T0)
    sim = VoiceSimulator(VoiceProfile(seed=5), clock)
    sim.place(shuffled[:200], T0)
    sim.place(shuffled[200:], T0)
    second = {o.attempt_id: (o.code, o.at, o.details)
              for o in sim.due(T0 + timedelta(days=1))}
    assert first == second
    other_seed = run(VoiceProfile(seed=6), orders)
    assert sum(first[k][0] != other_seed[k][0] for k in first) > 100


def test_outcome_frequencies_follow_the_profile():
    profile = VoiceProfile(answer_human=0.3, answer_machine=0.2, busy=0.15, no_answer=0.15,
                           invalid_number=0.05, fax=0.05, network_refusal=0.1, seed=3)
    counts = Counter(code for code, _, _ in run(profile, calls(20_000)).values())
    assert sum(counts.values()) == 20_000
    for code, p in zip(CODES, profile.probabilities()):
        # 5 standard deviations of a binomial proportion at n = 20,000
        assert abs(counts[code] / 20_000 - p) < 5 * math.sqrt(p * (1 - p) / 20_000), code


def test_no_answer_completes_exactly_at_the_ring_timeout():
    profile = VoiceProfile(answer_human=0, answer_machine=0, busy=0, no_answer=1,
                           invalid_number=0, fax=0, network_refusal=0)
    sim = VoiceSimulator(profile, ManualClock(T0))
    sim.place(calls(3, ring_timeout=30.0), T0)
    assert sim.next_due() == T0 + timedelta(seconds=30)
    assert sim.due(T0 + timedelta(seconds=29.999)) == []
    done = sim.due(T0 + timedelta(seconds=30))
    assert [(o.code, o.at, o.details) for o in done] == \
        [("no_answer", T0 + timedelta(seconds=30), {"ring_s": 30.0})] * 3
    assert sim.due(T0 + timedelta(days=1)) == [] and sim.next_due() is None


def test_answered_calls_ring_within_the_timeout_then_talk():
    profile = VoiceProfile(answer_human=1, answer_machine=0, busy=0, no_answer=0,
                           invalid_number=0, fax=0, network_refusal=0,
                           ring_s={"dist": "uniform", "low": 5, "high": 40},
                           talk_s={"dist": "fixed", "value": 60})
    results = run(profile, calls(200, ring_timeout=20.0))
    rings = [details["ring_s"] for _, _, details in results.values()]
    assert max(rings) == 20.0 and min(rings) < 20.0
    for code, at, details in results.values():
        assert code == "answer_human" and details["talk_s"] == 60
        assert at == T0 + timedelta(seconds=details["ring_s"] + 60)


def test_completions_pop_in_time_order_once_each():
    clock = ManualClock(T0)
    sim = VoiceSimulator(VoiceProfile(seed=1), clock, name="gw-a")
    sim.place(calls(300))
    seen: list = []
    while sim.next_due() is not None:
        clock.advance(7)
        batch = sim.due()
        assert all(o.at <= clock.now() for o in batch)
        seen.extend(batch)
    assert len(seen) == 300 and len({o.attempt_id for o in seen}) == 300
    assert all(o.details["gateway"] == "gw-a" for o in seen)
    assert len(sim) == 0


def test_instant_mode_completes_everything_at_once_with_the_same_codes():
    orders = calls(2_000)
    sim = VoiceSimulator(VoiceProfile(instant=True, seed=2), ManualClock(T0))
    sim.place(orders, T0)
    assert sim.next_due() == T0
    done = sim.due(T0)
    assert len(done) == 2_000 and all(o.at == T0 for o in done)
    timed = run(VoiceProfile(seed=2), orders)
    assert {o.attempt_id: o.code for o in done} == {k: v[0] for k, v in timed.items()}
    assert {(o.job_id, o.shard, o.epoch) for o in done} == {(1, s, 1) for s in range(4)}
