"""Completion codes through the gateway: a custom code's name and flags are checked before any
database is touched (core/codes.py `custom_code`), and a campaign's codes as stored replace
its strategy's own in the code book its managers use (`Strategy.with_codes`)."""
from __future__ import annotations

import pytest

from pom_actors.core.agents.desk import disposition_codes, screen_pop
from pom_actors.core.codes import CodeError, CompletionCode, custom_code
from pom_actors.core.strategy import parse_strategy


@pytest.mark.parametrize("body, path", [
    ({"campaign_id": 1, "name": "busy"}, "name"),                       # a system code's
    ({"campaign_id": 1, "name": "default"}, "name"),                    # reserved
    ({"campaign_id": 1, "name": "Promised"}, "name"),
    ({"campaign_id": 1, "name": "x" * 65}, "name"),
    ({"campaign_id": 1, "name": "ok\u0000"}, "name"),
    ({"campaign_id": 0, "name": "promised"}, "campaign_id"),
    ({"campaign_id": 2**31, "name": "promised"}, "campaign_id"),
    ({"name": "promised"}, "campaign_id"),
    ({"campaign_id": 1, "name": "promised", "final": "maybe"}, "final"),
    ({"campaign_id": 1, "name": "promised", "bogus": True}, "bogus"),
])
def test_a_refused_code_names_the_field(http, body, path):
    r = http.post("/api/v1/completion-codes", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == path, r.text


@pytest.mark.parametrize("url, body, path", [
    ("/api/v1/completion-codes/1", {"final": [1]}, "final"),
    ("/api/v1/completion-codes/1", {"extra": 1}, "extra"),
    ("/api/v1/completion-codes/1", {"enabled": "sometimes"}, "enabled"),
    ("/api/v1/completion-codes/0", {}, "code_id"),
    ("/api/v1/completion-codes/99999999999", {}, "code_id"),
])
def test_a_refused_change_names_the_field(http, url, body, path):
    r = http.patch(url, json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["path"].split(".")[-1] == path, r.text


@pytest.mark.parametrize("query", ["system=perhaps", "enabled=perhaps", "campaign_id=-1", "limit=0", "limit=1001", "after=-1"])
def test_a_refused_list_query_is_a_422(http, query):
    assert http.get(f"/api/v1/completion-codes?{query}").status_code == 422


def test_custom_code_checks_its_name_and_flags():
    assert custom_code("promised", final=True) == CompletionCode("promised", final=True, system=False)
    for name in ("no_answer", "default", "9lives", ""):
        with pytest.raises(CodeError) as caught:
            custom_code(name)
        assert caught.value.field == "name"
    with pytest.raises(CodeError) as caught:
        custom_code("promised", finl=True)
    assert caught.value.field == "finl"


def test_a_campaigns_codes_replace_its_strategys_in_the_code_book():
    strategy = parse_strategy({"name": "s", "initial": "c", "handlers": {"c": {"type": "call"}},
                               "custom_codes": ["promised"]})
    assert not strategy.codebook()["promised"].final
    changed = strategy.with_codes([CompletionCode("promised", final=True, system=False),
                                   CompletionCode("callback_later", system=False)])
    assert changed.codebook()["promised"].final and "callback_later" in changed.codebook()
    assert "callback_later" not in strategy.codebook()                 # the original keeps its own
    with pytest.raises(ValueError, match="clashes with a system code"):
        strategy.with_codes([CompletionCode("busy", system=False)])


def test_a_disabled_code_still_routes_but_is_not_offered_to_agents():
    strategy = parse_strategy({"name": "s", "initial": "c", "handlers": {"c": {
        "type": "call", "results": {"promised": "done", "default": "done"}}},
        "custom_codes": ["promised", "callback_later"]})
    changed = strategy.with_codes([CompletionCode("promised", final=True, system=False, enabled=False),
                                   CompletionCode("callback_later", system=False)])
    assert changed.disabled_codes() == {"promised"} and strategy.disabled_codes() == frozenset()
    assert changed.codebook()["promised"].final                        # its flags still count
    codes = screen_pop("c1", 1, {}, changed, "c")["codes"]
    assert "callback_later" in codes and "promised" not in codes
    assert "promised" in disposition_codes(changed.codebook())
    assert changed.with_scripts({}).disabled_codes() == {"promised"}   # kept through later copies
