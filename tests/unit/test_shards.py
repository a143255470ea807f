from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from pom_actors.core.shards import allocate, moves, shard_of

MANAGERS = st.lists(st.sampled_from([f"m{i}" for i in range(8)]), max_size=8, unique=True)


@st.composite
def situations(draw):
    n = draw(st.integers(0, 40))
    shards = list(range(n))
    managers = draw(MANAGERS)
    ever = draw(MANAGERS)        # holders of the current allocation, some maybe dead now
    current = {s: draw(st.sampled_from(ever)) for s in shards
               if ever and draw(st.booleans())}
    return shards, managers, current


def test_shard_of():
    assert [shard_of(c, 4) for c in range(6)] == [0, 1, 2, 3, 0, 1]
    with pytest.raises(ValueError):
        shard_of(1, 0)


@given(situations())
@settings(max_examples=300, deadline=None)
def test_allocation_is_balanced_complete_and_live(situation):
    shards, managers, current = situation
    result = allocate(shards, managers, current)
    if not managers:
        assert result == {}
        return
    assert set(result) == set(shards)
    assert set(result.values()) <= set(managers)
    counts = Counter(result.values())
    loads = [counts.get(m, 0) for m in managers]
    assert max(loads) - min(loads) <= 1


@given(situations())
@settings(max_examples=300, deadline=None)
def test_allocation_moves_as_few_shards_as_balance_allows(situation):
    shards, managers, current = situation
    if not managers:
        return
    result = allocate(shards, managers, current)
    kept = sum(1 for s in shards if current.get(s) in managers and result[s] == current[s])
    # upper bound on keepable shards: each live holder keeps at most its balanced share
    base, extra = divmod(len(shards), len(managers))
    held = sorted((sum(1 for s in shards if current.get(s) == m) for m in managers), reverse=True)
    best = sum(min(h, base + (1 if i < extra else 0)) for i, h in enumerate(held))
    assert kept == best


@given(situations())
@settings(max_examples=200, deadline=None)
def test_allocation_is_deterministic_and_stable(situation):
    shards, managers, current = situation
    result = allocate(shards, managers, current)
    assert allocate(list(reversed(shards)), list(reversed(managers)), dict(current)) == result
    assert allocate(shards, managers, result) == result       # a fixed point: no churn
    assert moves(result, allocate(shards, managers, result)) == {}


def test_manager_joins_and_leaves():
    first = allocate(range(6), ["a", "b"], {})
    assert Counter(first.values()) == {"a": 3, "b": 3}
    joined = allocate(range(6), ["a", "b", "c"], first)
    moved = moves(first, joined)
    assert len(moved) == 2 and all(new == "c" for _, new in moved.values())
    left = allocate(range(6), ["a", "c"], joined)
    moved = moves(joined, left)
    assert {old for old, _ in moved.values()} == {"b"}
    assert len(moved) == 2


def test_moves_reports_new_and_changed_holders_only():
    assert moves({0: "a", 1: "b"}, {0: "a", 1: "c", 2: "a"}) == {1: ("b", "c"), 2: (None, "a")}


def test_no_managers_and_no_shards():
    assert allocate([0, 1], [], {0: "a"}) == {}
    assert allocate([], ["a"], {}) == {}
