"""Run-time changes of a job's pacing (`PATCH /api/v1/jobs/{id}`): each handler's parameters
changed over its strategy's, checked with the strategy's own pacing schema (`Pacing`).

A change names handlers of the job's strategy and, for each, any of `settings` (merged key by
key over the mode's settings; a key set to null goes back to the mode's default),
`max_concurrent` and `attempts_per_second` (null: unlimited). The mode itself does not change
while the job runs: whether a handler paces by agents decides the job's agents and licenses.
The job keeps each changed handler's whole pacing (`jobs.pacing`); its managers read it at
every lease renewal and give a handler whose pacing changed a new pacer (`effective`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from .strategy import Pacing, Strategy

CHANGEABLE = ("settings", "max_concurrent", "attempts_per_second")


class JobChangeError(ValueError):
    """A change refused, with the field at fault (`pacing.<handler>.<parameter>`; a 422)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def changed_pacing(strategy: Strategy, current: Mapping[str, Any],
                   change: Mapping[str, Mapping[str, Any] | None] | None) -> dict[str, dict[str, Any]]:
    """The job's stored pacing (`current`, {handler: pacing}) after `change`: None puts every
    handler back to its strategy's pacing, `{handler: None}` that one."""
    if change is None:
        return {}
    out = dict(current)
    for handler, fields in change.items():
        path = f"pacing.{handler}"
        h = strategy.handlers.get(handler)
        if h is None:
            raise JobChangeError(path, f"the job's strategy has no handler {handler!r} "
                                       f"(its handlers: {', '.join(strategy.handlers)})")
        if fields is None:
            out.pop(handler, None)
            continue
        for key in fields:
            if key not in CHANGEABLE:
                raise JobChangeError(f"{path}.{key}", "the pacing mode does not change while the job runs"
                                     if key == "mode" else f"not a run-time pacing parameter "
                                                           f"(one of {', '.join(CHANGEABLE)})")
        merged = (Pacing.model_validate(out[handler]) if handler in out else h.pacing).model_dump(mode="json")
        if "settings" in fields:
            if not isinstance(fields["settings"], Mapping):
                raise JobChangeError(f"{path}.settings", "settings is an object of the mode's parameters")
            settings = {**merged["settings"], **fields["settings"]}
            merged["settings"] = {k: v for k, v in settings.items() if v is not None}
        merged.update({k: fields[k] for k in ("max_concurrent", "attempts_per_second") if k in fields})
        try:
            out[handler] = Pacing.model_validate(merged).model_dump(mode="json")
        except pydantic.ValidationError as exc:
            raise _fault(path, exc.errors()[0]) from None
    return out


def _fault(path: str, error: dict[str, Any]) -> JobChangeError:
    """The field of a Pacing error: its location, or the `settings.<key>` its mode's check
    names (`Pacing._settings`)."""
    where, message = ".".join(str(p) for p in error["loc"]), error["msg"].removeprefix("Value error, ")
    if not where and message.startswith("settings."):
        where, _, message = message.partition(": ")
    elif not where and "takes no settings" in message:
        where = "settings"
    return JobChangeError(f"{path}.{where}" if where else path, message)


def effective(strategy: Strategy, stored: Mapping[str, Any]) -> dict[str, Pacing]:
    """Each handler's pacing in force: its stored change, else its strategy's."""
    return {name: Pacing.model_validate(stored[name]) if name in stored else h.pacing
            for name, h in strategy.handlers.items()}
