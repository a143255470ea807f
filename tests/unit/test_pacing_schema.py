"""The published strategy schema (docs/strategy.schema.json) checks each pacing mode's settings
as Python does (`Pacing` through `parse_pacing_config`): an editor or validator using the schema
refuses a misspelt or out-of-range setting, and accepts the examples of docs/strategy.md and
docs/pacing.md."""
from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import get_args

import jsonschema
import pydantic
import pytest
import yaml

from pom_actors.core.pacing.schema import DEFAULT_MODE, SETTINGS_CONFIGS
from pom_actors.core.strategy import Pacing, parse_strategy, StrategyError

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = json.loads((DOCS / "strategy.schema.json").read_text())
PACING = jsonschema.Draft202012Validator({"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
                                          "$ref": "#/$defs/Pacing"})
STRATEGY = jsonschema.Draft202012Validator(SCHEMA)


def schema_ok(pacing: dict) -> bool:
    return PACING.is_valid(pacing)


def python_ok(pacing: dict) -> bool:
    try:
        Pacing.model_validate(pacing)
        return True
    except pydantic.ValidationError:
        return False


def document(pacing: dict) -> dict:
    agents = {} if pacing.get("mode", DEFAULT_MODE) == DEFAULT_MODE else {"agents": {"skills": ["sales"]}}
    return {"name": "s", "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "pacing": pacing, **agents,
                                  "results": {"default": "done"}}}}


def test_every_mode_is_covered():
    modes = get_args(Pacing.model_fields["mode"].annotation)
    assert set(SETTINGS_CONFIGS) | {DEFAULT_MODE} == set(modes)


# a misspelt setting, and a value out of its bounds or of the wrong type, per mode
BAD = {
    "preview": [{"timeout": 30}, {"timeout_s": 0}, {"timeout_s": 3601}, {"skip_codes": []},
                {"dial_on_timeout": "sometimes"}],
    "progressive": [{"ratoi": 1.5}, {"ratio": 0}, {"ratio": 51}],
    "predictive": [{"targt": 0.03}, {"target": 0.5}, {"target": 0}, {"rule": "eu_7d"}, {"gain": 11},
                   {"prior_hit_rate": 1}, {"window_s": -5}],
    "cruise_control": [{"service_levl": 0.9}, {"service_level": 1.0}, {"service_time_s": 0},
                       {"target": 0.03}],                     # predictive's, not cruise control's
    "skill_based": [{"metrc": "queue_length"}, {"metric": "queue"}, {"ratio": 11}, {"acquire_below": -1}],
}


@pytest.mark.parametrize("mode,settings", [(m, s) for m, bad in BAD.items() for s in bad])
def test_a_bad_setting_is_refused_by_the_schema_as_by_python(mode, settings):
    pacing = {"mode": mode, "settings": settings}
    assert not schema_ok(pacing) and not python_ok(pacing)
    errors = list(STRATEGY.iter_errors(document(pacing)))
    assert errors and all("settings" in e.json_path or "settings" in json.dumps(list(e.absolute_path))
                          for e in errors), [e.message for e in errors]
    with pytest.raises(StrategyError) as refused:
        parse_strategy(document(pacing))
    assert any(e["path"].startswith("handlers.call.pacing") for e in refused.value.errors)


def test_time_based_takes_no_setting_and_no_mode_takes_a_mode_setting():
    for pacing in ({"settings": {"rate": 5}}, {"mode": "time_based", "settings": {"burst": 2}},
                   {"mode": "predictive", "settings": {"mode": "predictive"}}):
        assert not schema_ok(pacing) and not python_ok(pacing), pacing
    assert schema_ok({"max_concurrent": 5, "attempts_per_second": 2.5}) and schema_ok({"mode": "time_based"})


def _coerced(value) -> bool:
    """A value Python's lax mode turns into another type: a boolean or a numeric text for a
    number, 0 or 1 for a boolean (the schema, stricter, refuses it)."""
    return isinstance(value, (bool, str)) or value in (0, 1)


def test_the_schema_and_python_agree_on_each_setting():
    """Differential: every setting of every mode with values of every kind (in and out of
    bounds, of other types): the schema accepts exactly what Python accepts, but for the
    coercions of Python's lax mode (`_coerced`), which the schema refuses, and skill_based's
    order of its thresholds, which only Python checks."""
    values = [-1, 0, 0.03, 0.5, 1, 2, 2.5, 10, 11, 50, 51, 3600, 3601, None, True, False, "x", "1", "us_30d",
              "uk_24h", "expected_wait", "queue_length", [], ["skipped"], ["a"] * 33, {}]
    checked = lax = 0
    for mode, config in SETTINGS_CONFIGS.items():
        for name, value in itertools.product([n for n in config.model_fields if n != "mode"], values):
            pacing = {"mode": mode, "settings": {name: value}}
            if mode == "skill_based" and name in ("acquire_below", "release_above"):
                continue                                      # their order is Python's alone (below)
            if schema_ok(pacing) != python_ok(pacing):
                assert python_ok(pacing) and _coerced(value), pacing
                lax += 1
            checked += 1
    assert checked > 900 and lax < checked / 5
    crossed = {"mode": "skill_based", "settings": {"acquire_below": 40}}     # above release_above's 30
    assert schema_ok(crossed) and not python_ok(crossed)


def _yaml_blocks(text: str) -> list:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def _pacings(node) -> list[dict]:
    if isinstance(node, dict):
        found = [node["pacing"]] if isinstance(node.get("pacing"), dict) else []
        return found + [p for v in node.values() for p in _pacings(v)]
    if isinstance(node, list):
        return [p for v in node for p in _pacings(v)]
    return []


def test_the_examples_of_strategy_md_are_accepted():
    pacings = [p for block in _yaml_blocks((DOCS / "strategy.md").read_text()) for p in _pacings(block)]
    assert any(p.get("settings") for p in pacings)
    for pacing in pacings:
        assert schema_ok(pacing) and python_ok(pacing), pacing
    for path in (DOCS.parent / "pom_actors" / "examples").glob("*.yaml"):
        STRATEGY.validate(yaml.safe_load(path.read_text()))


def _default(cell: str):
    cell = cell.strip().strip("`")
    try:
        return json.loads(cell)
    except json.JSONDecodeError:
        return cell                                           # a bare name: us_30d, minute, ...


def test_the_parameters_of_pacing_md_are_accepted_with_their_defaults():
    """Each mode's table in docs/pacing.md (parameter, default, meaning): every parameter it
    lists is a setting of that mode, and its default is accepted, alone and all together; the
    page's make_pacer example too, as a strategy's pacing."""
    text = (DOCS / "pacing.md").read_text()
    sections = re.split(r"^### `(\w+)`\s*$", text, flags=re.M)
    tables = 0
    for mode, body in zip(sections[1::2], sections[2::2]):
        if mode not in SETTINGS_CONFIGS:
            continue
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", body, re.M)
        settings = {name: _default(default) for name, default in rows if default.strip() != "required"}
        assert settings, mode
        tables += 1
        for name, value in settings.items():
            assert schema_ok({"mode": mode, "settings": {name: value}}), (mode, name, value)
            assert python_ok({"mode": mode, "settings": {name: value}}), (mode, name, value)
        assert schema_ok({"mode": mode, "settings": settings}) and python_ok({"mode": mode, "settings": settings})
    assert tables == len(SETTINGS_CONFIGS)
    example = json.loads(re.search(r"make_pacer\((\{.*?\})\)", text).group(1))
    pacing = {"mode": example.pop("mode"), "settings": example}
    assert schema_ok(pacing) and python_ok(pacing)
