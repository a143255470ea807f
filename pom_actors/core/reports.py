"""What a report may read, as pure code: every report covers a bounded time range and returns a
bounded number of rows, so no request can make the gateway scan the whole ledger
(docs/api.md, "Reports").

* The **range** is `[since, until)`: `until` defaults to now, `since` to `until` minus
  `DEFAULT_RANGE`; a range over `MAX_RANGE` is refused (422, the field at fault).
* While the load monitor's **"reports limited"** restriction holds (the database saturated:
  `core.load`), the default range is `LIMITED_RANGE` and a longer one is answered 503 with
  `Retry-After` (`ReportLimited`): a short report still answers, a long scan waits for the lift.
* The **rows** are capped (`limit`, at most `MAX_ROWS`); one more is read to tell `truncated`.
* A **bucket** (hour of the attempts report, window of the abandon report) is a whole number
  of seconds between `MIN_BUCKET_S` and `MAX_BUCKET_S` (the API's bounds), aligned on `ORIGIN`
  (UTC midnight).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .load import LoadConfig, Restrictions, parse_source

DEFAULT_RANGE = timedelta(hours=24)
MAX_RANGE = timedelta(days=31)
LIMITED_RANGE = timedelta(hours=1)
DEFAULT_ROWS, MAX_ROWS = 1000, 10_000
MIN_BUCKET_S, MAX_BUCKET_S = 60, 86_400
ORIGIN = datetime(2000, 1, 1, tzinfo=timezone.utc)


class RangeError(ValueError):
    """A report's range refused (422): `field` is the query parameter at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class ReportLimited(RuntimeError):
    """The range asked for is longer than the database's load allows now (503, Retry-After)."""

    def __init__(self, asked: timedelta, retry_after_s: int, because: list[str]):
        self.retry_after_s, self.because = retry_after_s, because
        self.max_range_s = int(LIMITED_RANGE.total_seconds())
        super().__init__(f"report queries are limited to {self.max_range_s} s under load (alarms: "
                         f"{', '.join(because) or 'none'}); {int(asked.total_seconds())} s asked; "
                         f"ask for a shorter range or try again later")


@dataclass(frozen=True)
class Range:
    since: datetime
    until: datetime
    limited: bool                 # the "reports limited" restriction held

    def document(self) -> dict:
        return {"since": self.since, "until": self.until, "limited": self.limited}


def _utc(value: datetime) -> datetime:
    """A time without a zone is taken as UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def resolve(since: datetime | None, until: datetime | None, now: datetime, restrictions: Restrictions,
            config: LoadConfig | None = None) -> Range:
    """The range a report reads: defaults filled in, checked against `MAX_RANGE` (RangeError) and,
    while reports are limited, against `LIMITED_RANGE` (ReportLimited)."""
    limited = not restrictions.allows("report")
    until = _utc(until) if until is not None else now
    try:
        since = _utc(since) if since is not None else until - (LIMITED_RANGE if limited else DEFAULT_RANGE)
    except OverflowError:
        raise RangeError("until", f"until ({until.isoformat()}) is too early") from None
    if since >= until:
        raise RangeError("since", f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    if until - since > MAX_RANGE:
        raise RangeError("since", f"a report covers at most {MAX_RANGE.days} days; "
                                  f"{(until - since).total_seconds() / 86400:.1f} asked")
    if limited and until - since > LIMITED_RANGE:
        because = restrictions.because.get("reports_limited", [])
        raise ReportLimited(until - since, retry_after(because, config or LoadConfig()), because)
    return Range(since, until, limited)


def retry_after(sources: list[str], config: LoadConfig) -> int:
    """Seconds before the restriction can lift at the soonest: the samples its alarms need under
    their thresholds to clear (at least one sample)."""
    samples = [config.thresholds[m].samples for m in (parse_source(s)[0] for s in sources) if m in config.thresholds]
    return max(1, math.ceil(config.sample_s * max(samples or [1])))


def abandon_rate(counts: Mapping[str, int]) -> float | None:
    """Abandoned over live answers (answered by a person or abandoned), as the managers count
    them (`services.manager`); None without a live answer."""
    live = counts.get("answered", 0) + counts.get("abandoned", 0)
    return round(counts.get("abandoned", 0) / live, 6) if live else None


def occupancy(agent_time: Mapping[str, float]) -> float | None:
    """Agents' busy time — on call, then in after-call work until their disposition — over
    their logged-in time (`store.reports.job_agent_time`), as the pacing simulator counts it
    (core/pacing/sim.py); None before any agent worked."""
    logged_in = agent_time.get("logged_in", 0.0)
    busy = agent_time.get("on_call", 0.0) + agent_time.get("wrap_up", 0.0)
    return round(busy / logged_in, 6) if logged_in else None
