"""`make_pacer(config)`: a strategy names a pacing mode and its settings; this builds the pacer."""
from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from pom_actors.core.pacing.base import Pacer
from pom_actors.core.pacing.predictive import (CruiseControlConfig, CruiseControlPacer,
                                               PredictiveConfig, PredictivePacer)
from pom_actors.core.pacing.preview import PreviewConfig, PreviewPacer
from pom_actors.core.pacing.progressive import ProgressiveConfig, ProgressivePacer
from pom_actors.core.pacing.skill_based import SkillBasedConfig, SkillBasedPacer
from pom_actors.core.pacing.time_based import TimeBasedConfig, TimeBasedPacer

AnyPacingConfig = Annotated[
    Union[PreviewConfig, ProgressiveConfig, PredictiveConfig, CruiseControlConfig,
          TimeBasedConfig, SkillBasedConfig],
    Field(discriminator="mode"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyPacingConfig)
_PACERS: dict[type, type[Pacer]] = {
    PreviewConfig: PreviewPacer, ProgressiveConfig: ProgressivePacer,
    PredictiveConfig: PredictivePacer, CruiseControlConfig: CruiseControlPacer,
    TimeBasedConfig: TimeBasedPacer, SkillBasedConfig: SkillBasedPacer,
}
MODES = ("preview", "progressive", "predictive", "cruise_control", "time_based", "skill_based")


def parse_pacing_config(config: dict) -> Any:
    """Validate a pacing config dict; raises pydantic.ValidationError with the faulty path."""
    return _ADAPTER.validate_python(config)


def make_pacer(config: dict) -> Pacer:
    """Build the pacer named by `config["mode"]` from its validated settings."""
    parsed = parse_pacing_config(config)
    return _PACERS[type(parsed)](parsed)
