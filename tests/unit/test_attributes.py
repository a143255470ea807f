"""core.attributes: the bounded one-level merge patch of a contact's attributes."""
from __future__ import annotations

import pytest

from pom_actors.core.attributes import MAX_BYTES, MAX_DEPTH, MAX_KEYS, MAX_PATCH_KEYS, AttributesRefused, depth, merge


def test_a_patch_sets_replaces_and_removes_keys_and_leaves_the_others():
    assert merge({"a": 1, "b": 2, "c": 3}, {"a": 10, "b": None, "d": {"x": [1]}}) == {"a": 10, "c": 3, "d": {"x": [1]}}


def test_removing_a_key_that_is_not_there_changes_nothing():
    assert merge({"a": 1}, {"z": None}) == {"a": 1}


def test_the_current_attributes_are_not_changed_in_place():
    current = {"a": 1}
    merge(current, {"a": 2})
    assert current == {"a": 1}


@pytest.mark.parametrize("value, expected", [(1, 0), ("x", 0), ({}, 1), ([], 1), ({"a": [1]}, 2),
                                             ([[[[1]]]], 4), ({"a": {"b": {"c": {"d": {}}}}}, 5)])
def test_depth(value, expected):
    assert depth(value) == expected


def test_depth_of_a_very_deep_value_stops_early_without_recursion():
    value: list = []
    for _ in range(100_000):
        value = [value]
    assert depth(value) == MAX_DEPTH + 1


@pytest.mark.parametrize("patch, field", [
    ({}, "attributes"),
    ({f"k{i}": i for i in range(MAX_PATCH_KEYS + 1)}, "attributes"),
    ({"": 1}, "attributes"),
    ({"k" * 101: 1}, "attributes"),
    ({"deep": [[[[[1]]]]]}, "attributes.deep"),
    ({"big": "x" * MAX_BYTES}, "attributes"),
])
def test_a_patch_out_of_bounds_is_refused_naming_the_field(patch, field):
    with pytest.raises(AttributesRefused) as refused:
        merge({"kept": 1}, patch)
    assert refused.value.field == field


def test_the_merged_attributes_are_bounded_in_number():
    current = {f"k{i}": i for i in range(MAX_KEYS)}
    with pytest.raises(AttributesRefused, match="at most 200 attributes"):
        merge(current, {"one_more": 1})
    assert len(merge(current, {"k0": None, "one_more": 1})) == MAX_KEYS


def test_a_patch_that_is_not_an_object_is_refused():
    with pytest.raises(AttributesRefused):
        merge({}, [1, 2])  # type: ignore[arg-type]


def test_stored_attributes_with_an_integer_beyond_64_bits_can_still_be_patched():
    assert merge({"big": 2**70}, {"a": 1}) == {"big": 2**70, "a": 1}
