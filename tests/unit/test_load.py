"""core/load.py: thresholds with hysteresis over sequences of readings, the alarms raised and
cleared as transitions, and the restrictions the active alarms impose."""
from __future__ import annotations

import pydantic
import pytest

from pom_actors.core.load import (DEFAULT_THRESHOLDS, METRICS, Hysteresis, LoadConfig, Restrictions,
                                  SlowDown, alarm_source, levels, parse_source, restrictions, stale_servers)


def config(**thresholds) -> LoadConfig:
    return LoadConfig.build({"thresholds": thresholds})


def run(h: Hysteresis, cfg: LoadConfig, metric: str, values, server=None) -> list[list[tuple[str, bool]]]:
    return [[(t.source, t.raised) for t in h.observe({metric: v}, cfg, server)] for v in values]


def test_defaults_are_valid_and_cover_every_metric():
    cfg = LoadConfig()
    assert set(cfg.thresholds) == set(METRICS) == set(DEFAULT_THRESHOLDS)
    assert LoadConfig.build(None) == cfg == LoadConfig.build(cfg.document())


def test_a_partial_document_merges_over_the_defaults_field_by_field():
    cfg = LoadConfig.build({"sample_s": 1, "thresholds": {"server.memory": {"raise_at": 10, "clear_below": 5}}})
    assert cfg.sample_s == 1.0
    assert cfg.thresholds["server.memory"].raise_at == 10
    assert cfg.thresholds["server.memory"].imports == "queued"          # the default's
    assert cfg.thresholds["database.blocked"] == LoadConfig().thresholds["database.blocked"]


@pytest.mark.parametrize("doc, path", [
    ({"thresholds": {"server.disk": {"raise_at": 1, "clear_below": 0}}}, ("thresholds",)),
    ({"thresholds": {"server.cpu": {"raise_at": 50, "clear_below": 60}}}, ("thresholds", "server.cpu")),
    ({"thresholds": {"server.cpu": {"dial_factor": 0}}}, ("thresholds", "server.cpu", "dial_factor")),
    ({"thresholds": {"server.cpu": {"imports": "later"}}}, ("thresholds", "server.cpu", "imports")),
    ({"sample_s": 0}, ("sample_s",)),
    ({"bogus": 1}, ("bogus",)),
])
def test_bad_configs_are_refused_with_the_path(doc, path):
    with pytest.raises(pydantic.ValidationError) as err:
        LoadConfig.build(doc)
    assert tuple(err.value.errors()[0]["loc"])[:len(path)] == path


def test_raised_only_after_n_samples_at_or_over_and_cleared_after_n_under():
    cfg = config(**{"database.blocked": {"raise_at": 10, "clear_below": 3, "samples": 3}})
    h = Hysteresis()
    seq = run(h, cfg, "database.blocked", [10, 12, 5, 10, 11, 10, 9, 2, 4, 2, 1, 0])
    raised = [("database.blocked", True)]
    cleared = [("database.blocked", False)]
    #        10  12  5   10  11  10      9   2   4   2   1   0
    assert seq == [[], [], [], [], [], raised, [], [], [], [], [], cleared]
    assert h.active == set()


def test_wavering_between_the_two_thresholds_changes_nothing():
    cfg = config(**{"pom.jobs": {"raise_at": 10, "clear_below": 5, "samples": 1}})
    h = Hysteresis()
    assert run(h, cfg, "pom.jobs", [10, 9, 6, 8, 5, 7, 10, 4]) == [
        [("pom.jobs", True)], [], [], [], [], [], [], [("pom.jobs", False)]]


def test_per_server_sources_and_a_restart_from_the_active_alarms():
    cfg = config(**{"server.memory": {"raise_at": 80, "clear_below": 70, "samples": 1}})
    h = Hysteresis()
    t = h.observe({"server.memory": 85.0}, cfg, "node-a")
    assert [(x.source, x.raised, x.metric, x.server) for x in t] == [("server.memory@node-a", True, "server.memory", "node-a")]
    assert "85" in t[0].message and "node-a" in t[0].message
    restarted = Hysteresis(active={"server.memory@node-a"})
    assert restarted.observe({"server.memory": 90.0}, cfg, "node-a") == []          # not raised twice
    assert [x.raised for x in restarted.observe({"server.memory": 50.0}, cfg, "node-a")] == [False]


def test_disabling_a_threshold_clears_its_alarm_and_unknown_metrics_are_ignored():
    cfg = config(**{"pom.imports": {"raise_at": 1, "clear_below": 1, "samples": 1}})
    h = Hysteresis()
    assert [t.raised for t in h.observe({"pom.imports": 3, "something.else": 9}, cfg)] == [True]
    off = config(**{"pom.imports": {"raise_at": 1, "clear_below": 1, "enabled": False}})
    assert [(t.raised, "disabled" in t.message) for t in h.observe({"pom.imports": 3}, off)] == [(False, True)]
    assert h.observe({"pom.imports": 3}, off) == []


def test_restrictions_follow_the_active_alarms_strictest_wins():
    cfg = LoadConfig()
    assert restrictions([], cfg) == Restrictions()
    assert restrictions([], cfg).allows("import") and restrictions([], cfg).allows("dial")
    mem = restrictions(["server.memory@a"], cfg)
    assert (mem.dial_factor, mem.imports, mem.allows("import")) == (1.0, "queued", False)
    both = restrictions(["server.memory@a", "database.connections", "pom.agents"], cfg)
    assert both.dial_factor == 0.5 and both.imports == "refused"
    assert both.because == {"dial_slowed": ["database.connections"], "imports_refused": ["database.connections"],
                            "reports_limited": ["database.connections"], "purges_deferred": ["database.connections"],
                            "imports_queued": ["server.memory@a"]}
    assert (both.reports, both.purges, both.allows("report"), both.allows("purge")) == ("limited", "deferred",
                                                                                          False, False)
    assert mem.allows("report") and mem.allows("purge")        # memory short: reports and purges go on
    custom = config(**{"database.blocked": {"dial_factor": 0.25}})
    assert restrictions(["database.blocked", "database.sessions"], custom).dial_factor == 0.25
    assert Restrictions.from_dict(both.to_dict()) == both
    with pytest.raises(ValueError):
        both.allows("export")


def test_levels_per_component_take_the_worst_severity():
    out = levels({"database.connections": "critical", "database.blocked": "major", "server.cpu@a": "minor"})
    assert out["database"] == {"level": "critical", "alarms": ["database.blocked", "database.connections"]}
    assert out["server"]["level"] == "minor" and out["pom"] == {"level": "normal", "alarms": []}


def test_sources_and_stale_servers():
    assert alarm_source("server.cpu", "n1") == "server.cpu@n1" and alarm_source("pom.jobs") == "pom.jobs"
    assert parse_source("server.cpu@n1") == ("server.cpu", "n1") and parse_source("pom.jobs") == ("pom.jobs", None)
    assert stale_servers({"a": 5.0, "b": 120.0}, LoadConfig()) == {"b"}


def test_slow_down_scales_budgets_exactly_over_time():
    slow = SlowDown()
    assert [slow.scale("call", 1, 0.5) for _ in range(6)] == [0, 1, 0, 1, 0, 1]
    assert sum(slow.scale("sms", 10, 0.3) for _ in range(10)) == 30
    assert slow.scale("call", 7, 1.0) == 7 and slow.scale("call", 0, 0.5) == 0


def test_alarm_events_match_the_shipped_json_schema():
    """An alarm event as store.load writes it (core.events.alarm_event plus `alarm_id` and `at`
    added by the statement) fits docs/events.schema.json, and only its `alarm` kind."""
    import json
    from pathlib import Path

    import jsonschema
    import orjson

    from pom_actors.core.events import alarm_event, alarm_key, messages

    schema = json.loads((Path(__file__).parents[2] / "docs" / "events.schema.json").read_text())
    cfg = config(**{"server.memory": {"raise_at": 80, "clear_below": 60, "samples": 1}})
    h = Hysteresis()
    raised = h.observe({"server.memory": 91.5}, cfg, "abcdef012345")[0]
    cleared = h.observe({"server.memory": 12.0}, cfg, "abcdef012345")[0]
    events = [alarm_event(t.source, t.raised, t.severity, t.message, t.value, t.threshold) for t in (raised, cleared)]
    events.append(alarm_event("server.memory@gone", False, "major", "server gone", None, None))
    for i, e in enumerate(events):
        e.update(alarm_id=i + 1, at="2026-11-25T15:00:00+00:00")
        (message,) = messages(i, "pom.alarms", alarm_key(e["source"]), [e])
        assert message.key == "alarm-" + e["source"]
        value = orjson.loads(message.value)
        jsonschema.validate(value, schema)
        kinds = [k for k in ("attempt_outcome", "attempt_restricted", "job", "alarm")
                 if jsonschema.Draft202012Validator({**schema, "oneOf": [{"$ref": f"#/$defs/{k}"}]}).is_valid(value)]
        assert kinds == ["alarm"]
    assert events[0]["state"] == "raised" and events[1]["state"] == "cleared" and events[0]["server"] == "abcdef012345"


def test_metrics_export_the_readings_alarms_and_restrictions():
    from api.metrics import Scrape, exported_families, families
    from pom_actors.store.metrics import Figures, OutboxRead

    figures = Figures(jobs={}, live=[], items={}, outbox=OutboxRead(),
                      alarms={"database.blocked": "major", "server.memory@n1": "major"},
                      load=[{"server": "n1", "leader": True, "age_s": 1.5,
                             "readings": {"server.cpu": 12.5, "server.memory": 91.0, "database.blocked": 4.0,
                                          "pom.imports": 1.0}},
                            {"server": "n2", "leader": False, "age_s": 0.5,
                             "readings": {"server.cpu": 50.0, "server.memory": 10.0}}])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for m in families(Scrape(figures=figures)) for s in m.samples}
    assert samples[("pom_load_memory_percent", (("server", "n1"),))] == 91.0
    assert samples[("pom_load_cpu_percent", (("server", "n2"),))] == 50.0
    assert samples[("pom_load_db_blocked_sessions", ())] == 4.0
    assert samples[("pom_load_imports_running", ())] == 1.0
    assert samples[("pom_alarms_active", (("component", "server"), ("severity", "major"),
                                          ("source", "server.memory@n1")))] == 1
    assert samples[("pom_load_dial_factor", ())] == 0.5
    assert samples[("pom_load_imports_restriction", (("mode", "refused"),))] == 1.0
    assert {"pom_alarms_active", "pom_load_cpu_percent", "pom_load_dial_factor"} <= set(exported_families())
