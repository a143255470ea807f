"""License distribution: minimums first by priority, the rest by priority share, never over
the pool or a maximum; properties checked with hypothesis."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pom_actors.core.agents.licenses import Demand, LicensePools, allocate, apportion, pool_for


def test_minimums_first_in_priority_order_when_the_pool_is_short():
    got = apportion(5, [(1, 3, 4, None), (2, 9, 3, None), (3, 9, 2, None)])
    # priority 9 jobs first (job 2 before job 3 by id), then what is left
    assert got == {2: 3, 3: 2, 1: 0}


def test_the_rest_goes_by_priority_share():
    assert apportion(30, [(1, 10, 0, None), (2, 5, 0, None)]) == {1: 20, 2: 10}
    assert apportion(12, [(1, 2, 0, None), (2, 1, 0, None), (3, 1, 0, None)]) == {1: 6, 2: 3, 3: 3}


def test_a_minimum_above_the_share_is_kept_and_takes_nothing_more():
    assert apportion(10, [(1, 10, 0, None), (2, 1, 6, None)]) == {1: 4, 2: 6}


def test_maximums_cap_and_the_rest_flows_on():
    assert apportion(10, [(1, 10, 0, 2), (2, 1, 0, None)]) == {1: 2, 2: 8}
    assert apportion(10, [(1, 10, 0, 2), (2, 1, 0, 3)]) == {1: 2, 2: 3}


def test_ties_go_to_the_smaller_job_id():
    assert apportion(3, [(2, 5, 0, None), (1, 5, 0, None)]) == {1: 2, 2: 1}


def test_an_unlimited_pool_grants_each_maximum():
    assert apportion(None, [(1, 5, 2, 8), (2, 5, 0, None)]) == {1: 8, 2: None}


def test_pools_are_separate_and_notification_jobs_draw_ports():
    pools = LicensePools(preview=2, predictive=10, ports=100)
    demands = [Demand(1, pool_for("preview", True), 5, 1, None),
               Demand(2, pool_for("predictive", True), 5, 0, None),
               Demand(3, pool_for("progressive", True), 10, 0, None),
               Demand(4, pool_for("time_based", False), 5, 0, 30),
               Demand(5, pool_for(None, False), 5, 0, None)]
    alloc = allocate(pools, demands)
    assert alloc.grants == {1: 2, 2: 3, 3: 7, 4: 30, 5: 70}
    view = alloc.as_dict()
    assert view["pools"] == {"preview": {"size": 2, "granted": 2, "free": 0},
                             "predictive": {"size": 10, "granted": 10, "free": 0},
                             "ports": {"size": 100, "granted": 100, "free": 0}}
    assert view["jobs"][3] == {"job_id": 4, "pool": "ports", "priority": 5, "minimum": 0, "maximum": 30,
                               "granted": 30}


def test_pools_from_the_environment():
    assert LicensePools.from_env({}) == LicensePools()
    assert LicensePools.from_env({"POM_LICENSE_PREDICTIVE_AGENTS": "50", "POM_LICENSE_OUTBOUND_PORTS": " 200 "}) \
        == LicensePools(predictive=50, ports=200)
    with pytest.raises(ValueError):
        LicensePools.from_env({"POM_LICENSE_PREVIEW_AGENTS": "-1"})


def test_bad_demands_are_refused():
    with pytest.raises(ValueError):
        Demand(1, "seats")
    with pytest.raises(ValueError):
        Demand(1, "ports", priority=11)
    with pytest.raises(ValueError):
        allocate(LicensePools(), [Demand(1, "ports"), Demand(1, "ports")])


claims = st.lists(st.tuples(st.integers(1, 10), st.integers(0, 20), st.one_of(st.none(), st.integers(0, 40))),
                  min_size=0, max_size=8).map(lambda cs: [(i + 1, p, lo, hi) for i, (p, lo, hi) in enumerate(cs)])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), claims)
def test_never_over_the_pool_or_a_maximum_and_minimums_honoured(total, cs):
    got = apportion(total, cs)
    assert set(got) == {c[0] for c in cs}
    assert sum(got.values()) <= total
    for key, _, lo, hi in cs:
        assert 0 <= got[key] and (hi is None or got[key] <= hi)
    if sum(min(lo, hi if hi is not None else lo) for _, _, lo, hi in cs) <= total:
        assert all(got[k] >= min(lo, hi if hi is not None else lo) for k, _, lo, hi in cs)
    # work-conserving: units are left over only when every job is at its maximum
    if sum(got.values()) < total:
        assert all(hi is not None and got[k] == hi for k, _, _, hi in cs)
    assert apportion(total, list(reversed(cs))) == got            # deterministic, order-free


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), claims.filter(bool), st.data())
def test_monotone_in_priority(total, cs, data):
    i = data.draw(st.integers(0, len(cs) - 1))
    key, p, lo, hi = cs[i]
    higher = data.draw(st.integers(p, 10))
    raised = cs[:i] + [(key, higher, lo, hi)] + cs[i + 1:]
    assert apportion(total, raised)[key] >= apportion(total, cs)[key]
