"""core.dialling: campaign lists, sort keys, ranks and the dialling order a claim follows."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import permutations

import pytest

from pom_actors.core import dialling as D

NOW = datetime(2026, 11, 25, 15, tzinfo=timezone.utc)


def refused(call, field: str) -> str:
    with pytest.raises(D.ListsError) as err:
        call()
    assert err.value.field == field
    return str(err.value)


@pytest.mark.parametrize("order", list(permutations(D.KINDS)))
def test_every_order_of_the_three_kinds_is_a_dialling_order(order):
    assert D.dialling_order(list(order)) == order


def test_a_dialling_order_names_each_kind_once():
    assert "regular missing" in refused(lambda: D.dialling_order(["priority", "retries"]), "dialling_order")
    assert "twice" in refused(lambda: D.dialling_order(["priority", "priority", "regular"]), "dialling_order.1")
    refused(lambda: D.dialling_order(["priority", "callbacks", "regular"]), "dialling_order.1")
    refused(lambda: D.dialling_order("priority,retries,regular"), "dialling_order")
    refused(lambda: D.dialling_order([*D.KINDS, "regular"]), "dialling_order.3")


def test_sort_keys_read_contact_fields_in_their_type_and_attributes_as_told():
    assert D.sort_key({"field": "last_name"}, "s") == D.SortKey("last_name", "text", False)
    assert D.sort_key({"field": "created_at", "order": "desc"}, "s") == D.SortKey("created_at", "timestamp", True)
    key = D.sort_key({"field": "attr.balance", "type": "number", "order": "desc"}, "s", ["balance"])
    assert key == D.SortKey("attr.balance", "number", True) and key.attribute == "balance"
    assert D.sort_key({"field": "attr.segment"}, "s").type == "text"       # attributes not known: any name
    assert key.as_dict() == {"field": "attr.balance", "type": "number", "order": "desc"}


def test_a_sort_key_is_refused_at_the_member_at_fault():
    refused(lambda: D.sort_key({"field": "password"}, "s"), "s.field")
    refused(lambda: D.sort_key({"field": "id; DROP TABLE contacts"}, "s"), "s.field")
    refused(lambda: D.sort_key({"field": "attr."}, "s"), "s.field")
    assert "declares no attribute" in refused(lambda: D.sort_key({"field": "attr.age"}, "s", ["balance"]), "s.field")
    refused(lambda: D.sort_key({"field": "attr.age", "type": "json"}, "s"), "s.type")
    refused(lambda: D.sort_key({"field": "last_name", "type": "number"}, "s"), "s.type")
    refused(lambda: D.sort_key({"field": "last_name", "order": "up"}, "s"), "s.order")
    refused(lambda: D.sort_key({"field": "last_name", "nulls": "first"}, "s"), "s.nulls")
    refused(lambda: D.sort_key("last_name", "s"), "s")


def test_campaign_lists_come_highest_priority_first_ties_as_given():
    lists = D.campaign_lists([{"list_id": 3}, {"list_id": 1, "priority": 9},
                              {"list_id": 2, "priority": 5, "sort": [{"field": "email"}]}])
    assert [(e.list_id, e.priority) for e in lists] == [(1, 9), (3, 5), (2, 5)]
    assert lists[2].as_dict() == {"list_id": 2, "priority": 5,
                                  "sort": [{"field": "email", "type": "text", "order": "asc"}]}


def test_campaign_lists_are_refused_at_the_entry_at_fault():
    refused(lambda: D.campaign_lists([]), "lists")
    refused(lambda: D.campaign_lists([{"list_id": i} for i in range(1, D.MAX_LISTS + 2)]), "lists")
    refused(lambda: D.campaign_lists([{"list_id": 1}, {"list_id": 1, "priority": 2}]), "lists.1.list_id")
    refused(lambda: D.campaign_lists([{"list_id": 1, "priority": 11}]), "lists.0.priority")
    refused(lambda: D.campaign_lists([{"list_id": 1, "priority": True}]), "lists.0.priority")
    refused(lambda: D.campaign_lists([{"list_id": "1"}]), "lists.0.list_id")
    refused(lambda: D.campaign_lists([{"list_id": 1, "sort": [{"field": "email"}] * 5}]), "lists.0.sort")
    refused(lambda: D.campaign_lists([{"list_id": 1, "sort": [{"field": "attr.x"}]}], attributes={1: ["y"]}),
            "lists.0.sort.0.field")


def test_every_item_of_a_higher_list_ranks_before_any_of_a_lower_one():
    for p in range(D.PRIORITY_MIN + 1, D.PRIORITY_MAX + 1):
        assert D.rank_base(p) + (1 << D.RANK_BITS) - 1 < D.rank_base(p - 1)
    assert D.rank_base(D.PRIORITY_MAX) == 0
    assert D.rank_base(D.PRIORITY_MIN) + (1 << D.RANK_BITS) < 2**63     # a bigint holds every rank


def test_the_kind_of_an_item():
    assert D.kind_of("ready", True) == D.PRIORITY
    assert D.kind_of("ready", False) == D.REGULAR
    assert D.kind_of("scheduled", True) == D.RETRIES          # attempted once: a retry now
    assert D.kind_of("in_flight", False) is None and D.kind_of("done", False) is None


def _item(i, state, priority=False, rank=0, due=NOW):
    return {"id": i, "state": state, "priority": priority, "rank": rank, "next_at": due}


def test_a_claim_takes_the_kinds_in_the_dialling_order():
    items = [_item(1, "ready", rank=D.rank_base(3) + 1), _item(2, "ready", rank=D.rank_base(8) + 1),
             _item(3, "scheduled", due=NOW - timedelta(minutes=1)), _item(4, "scheduled", due=NOW - timedelta(hours=1)),
             _item(5, "ready", priority=True, rank=D.rank_base(3)), _item(6, "scheduled", due=NOW + timedelta(hours=1)),
             _item(7, "in_flight"), _item(8, "done")]
    ids = lambda order: [i["id"] for i in D.claim_order(items, order, NOW)]  # noqa: E731
    assert ids(D.DEFAULT_ORDER) == [5, 4, 3, 2, 1]          # the retry not due (6) waits
    assert ids(("regular", "retries", "priority")) == [2, 1, 4, 3, 5]
    assert ids(("retries", "priority", "regular")) == [4, 3, 5, 2, 1]
