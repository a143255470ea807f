"""When a running job is finished, and why.

The director evaluates this on every progress tick; a non-None reason sends the job FINISH
(see lifecycle) and is stored with the job so users see why it ended.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import pydantic
from pydantic import Field


class FinishCriteria(pydantic.BaseModel):
    """Optional limits of a job; the first one met finishes it."""

    model_config = pydantic.ConfigDict(extra="forbid")

    end_time: datetime | None = None
    max_processed: Annotated[int, Field(ge=1)] | None = None
    goal_count: Annotated[int, Field(ge=1)] | None = None
    goal_codes: list[str] = []

    @pydantic.field_validator("end_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("end_time must be timezone-aware")
        return value

    @pydantic.model_validator(mode="after")
    def _goal_complete(self) -> "FinishCriteria":
        if (self.goal_count is None) != (not self.goal_codes):
            raise ValueError("goal_count and goal_codes must be given together")
        return self


@dataclass
class JobCounts:
    done: int                    # items done (counted only when max_processed asks)
    by_code: Mapping[str, int]   # done items by final code (counted only for a goal's codes)
    has_open: bool               # any item ready, scheduled or in flight


def finish_reason(criteria: FinishCriteria | None, counts: JobCounts, now: datetime) -> str | None:
    """Why the job is finished now, or None; checked in the order end time, processed count,
    goal, no open work."""
    if criteria is not None:
        if criteria.end_time is not None and now >= criteria.end_time:
            return "end_time reached"
        if criteria.max_processed is not None and counts.done >= criteria.max_processed:
            return f"processed {criteria.max_processed} contacts"
        if criteria.goal_count is not None:
            reached = sum(counts.by_code.get(code, 0) for code in criteria.goal_codes)
            if reached >= criteria.goal_count:
                return (f"goal: {criteria.goal_count} contacts reached with "
                        f"{' or '.join(criteria.goal_codes)}")
    if not counts.has_open:
        return "all contacts processed"
    return None
