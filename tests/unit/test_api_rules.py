"""The Rule Editor's and the campaign routes' validation, before any database is touched."""
from __future__ import annotations

import pytest

from pom_actors.core.rules import RuleKind, params_faults


@pytest.mark.parametrize("body, path", [
    ({"kind": "max_attempts_contact", "params": {"max": 0}}, "params.max"),
    ({"kind": "max_attempts_contact", "params": {"max": "3"}}, "params.max"),
    ({"kind": "nuisance", "params": {"max": 3}}, "params.period_s"),
    ({"kind": "channel", "params": {"blocked": [""]}}, "params.blocked.0"),
    ({"kind": "window", "params": {"extra": 1}}, "params.extra"),
    ({"kind": "last_code", "enabled": False, "params": {"codes": "busy"}}, "params.codes"),
    ({"kind": "bogus"}, "kind"),
    ({"kind": "window", "campaign_id": 2**31}, "campaign_id"),
    ({"kind": "window", "params": {"x": "\u0000"}}, "params.x"),
])
def test_a_refused_rule_names_the_field(http, body, path):
    for r in (http.post("/api/v1/rules", json=body), http.put("/api/v1/rules/1", json=body)):
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == path, r.text


def test_params_faults_lists_each_fault_and_nothing_for_good_params():
    assert params_faults(RuleKind.NUISANCE, {"max": 3, "period_s": 60.0}) == []
    assert [p for p, _ in params_faults(RuleKind.NUISANCE, {"max": 0, "period_s": 0})] == [("max",), ("period_s",)]


@pytest.mark.parametrize("body, path", [({"priority": 11}, "priority"), ({"finish": {"bogus": 1}}, "finish.bogus"),
                                        ({"schedule": {"cron": "*/61 * * * *"}}, "schedule.cron"),
                                        ({"strategy_id": 0}, "strategy_id"), ({"strategy_id": "x"}, "strategy_id")])
def test_a_refused_campaign_change_names_the_field(http, body, path):
    r = http.patch("/api/v1/campaigns/1", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == path, r.text
