"""The JSON Schema of each pacing mode's settings (a strategy's `handlers.<name>.pacing.settings`),
generated from the modes' pydantic configs, so that the published strategy schema
(docs/strategy.schema.json, `core.strategy.strategy_json_schema`) refuses what
`parse_pacing_config` refuses: an unknown (misspelt) setting, a value of the wrong type or out
of its bounds. Two rules stay Python's alone: skill_based's `release_above` > `acquire_below`,
and preview's `skip_codes` being codes of the strategy."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .predictive import CruiseControlConfig, PredictiveConfig
from .preview import PreviewConfig
from .progressive import ProgressiveConfig
from .skill_based import SkillBasedConfig

# The modes that take settings, with their configs (time_based takes none: its limits are the
# handler's `max_concurrent` and `attempts_per_second`).
SETTINGS_CONFIGS: dict[str, type[BaseModel]] = {
    "preview": PreviewConfig, "progressive": ProgressiveConfig, "predictive": PredictiveConfig,
    "cruise_control": CruiseControlConfig, "skill_based": SkillBasedConfig,
}
DEFAULT_MODE = "time_based"


def settings_schema(mode: str) -> dict[str, Any]:
    """The schema of `mode`'s settings: its config's fields but `mode` (named by the pacing,
    not by its settings), no other key."""
    schema = SETTINGS_CONFIGS[mode].model_json_schema()
    if "$defs" in schema:                                 # none nests a model: kept self-contained
        raise ValueError(f"{mode} pacing config refers to other models")
    schema["properties"].pop("mode", None)
    required = [r for r in schema.pop("required", []) if r != "mode"]
    return {**schema, "title": f"{mode} pacing settings", "additionalProperties": False,
            **({"required": required} if required else {})}


def def_name(mode: str) -> str:
    return "".join(part.capitalize() for part in mode.split("_")) + "Settings"


def pacing_settings_rules(ref_prefix: str = "#/$defs/") -> tuple[dict[str, dict], list[dict]]:
    """(definitions by name, `allOf` rules for the Pacing object): per mode, `if {mode: const X}
    then {settings: <X's settings>}`; time_based (also the mode when none is given): no setting."""
    defs: dict[str, dict] = {}
    rules: list[dict] = []
    for mode in SETTINGS_CONFIGS:
        defs[def_name(mode)] = settings_schema(mode)
        rules.append({"if": {"properties": {"mode": {"const": mode}}, "required": ["mode"]},
                      "then": {"properties": {"settings": {"$ref": ref_prefix + def_name(mode)}}}})
    rules.append({"if": {"properties": {"mode": {"const": DEFAULT_MODE}}},
                  "then": {"properties": {"settings": {"type": "object", "maxProperties": 0}}}})
    return defs, rules
