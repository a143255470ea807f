"""The load monitor's decisions, as pure code: readings -> alarms (with hysteresis) ->
restrictions. No Ray, no database: `services/load_monitor.py` samples and stores, this
module decides (docs/operations.md, "Load monitor").

* A **reading** is one number per metric (`METRICS`): the database's sessions, connections,
  long queries and blocked sessions (from `pg_stat_activity`), POM's active jobs, logged-in
  agents and running imports, and each server's CPU and memory (psutil).
* Each metric has a **threshold** (`Threshold`): an alarm is raised once the reading has been
  at or over `raise_at` for `samples` consecutive samples, and cleared once it has been under
  `clear_below` for `samples` consecutive samples (hysteresis: a reading that wavers between
  the two changes nothing).
* An alarm's **source** is its metric, and for a per-server metric the server too
  (`server.cpu@<server>`); at most one alarm per source is active.
* The **restrictions** in force follow from the active alarms only (`restrictions`): each
  threshold names what its alarm imposes (dialling slowed by a factor, imports queued or
  refused, report queries limited, scheduled purges deferred). The strictest wins: the
  smallest factor, refused over queued.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic

COMPONENTS = ("database", "pom", "server")
# metric -> what it measures (the unit is in the name's description)
METRICS: dict[str, str] = {
    "database.sessions": "active database sessions (pg_stat_activity state 'active')",
    "database.connections": "database connections, percent of max_connections",
    "database.long_queries": "queries running longer than long_query_s",
    "database.blocked": "sessions waiting on a lock held by another (pg_blocking_pids)",
    "pom.jobs": "active jobs",
    "pom.agents": "agents logged in",
    "pom.imports": "imports running",
    "server.cpu": "CPU in use on the server, percent",
    "server.memory": "memory in use on the server, percent",
}
SERVER_METRICS = ("server.cpu", "server.memory")          # sampled by every server's monitor
CLUSTER_METRICS = tuple(m for m in METRICS if m not in SERVER_METRICS)   # by the leading monitor only
SEVERITIES = ("minor", "major", "critical")
IMPORT_MODES = ("allowed", "queued", "refused")           # in order of strictness
ACTIONS = ("import", "dial", "report", "purge")            # what `Restrictions.allows` answers for

Severity = Literal["minor", "major", "critical"]


def component(metric: str) -> str:
    return metric.split(".", 1)[0]


def alarm_source(metric: str, server: str | None = None) -> str:
    """The alarm source of a metric: `database.blocked`, or `server.cpu@<server>`."""
    return f"{metric}@{server}" if server else metric


def parse_source(source: str) -> tuple[str, str | None]:
    """(metric, server or None) of an alarm source."""
    metric, _, server = source.partition("@")
    return metric, server or None


class Threshold(pydantic.BaseModel):
    """When a metric's alarm is raised and cleared, and what it imposes while active."""
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    raise_at: float = pydantic.Field(..., ge=0, description="raised at or over this (held `samples` samples)")
    clear_below: float = pydantic.Field(..., ge=0, description="cleared under this (held `samples` samples)")
    samples: int = pydantic.Field(2, ge=1, le=1000, description="consecutive samples a change must hold")
    severity: Severity = "major"
    enabled: bool = True
    dial_factor: float | None = pydantic.Field(
        None, gt=0, le=1, description="while active, managers dial at this fraction of their pace")
    imports: Literal["queued", "refused"] | None = pydantic.Field(
        None, description="while active, new imports wait (queued) or are refused (the API answers 503)")
    reports: Literal["limited"] | None = pydantic.Field(
        None, description="while active, report queries cover a short range only (core.reports.LIMITED_RANGE)")
    purges: Literal["deferred"] | None = pydantic.Field(
        None, description="while active, purges wait (a running one stops after its batch, resumed when lifted)")

    @pydantic.model_validator(mode="after")
    def _hysteresis(self) -> "Threshold":
        if self.clear_below > self.raise_at:
            raise ValueError(f"clear_below ({self.clear_below:g}) must not be over raise_at ({self.raise_at:g})")
        return self


# The defaults (documented in docs/operations.md, "Load monitor"): a database near saturation
# slows dialling, refuses new imports, limits report queries and defers purges; a busy POM or
# a server short of memory queues new imports.
_SATURATED = {"dial_factor": 0.5, "imports": "refused", "reports": "limited", "purges": "deferred"}
DEFAULT_THRESHOLDS: dict[str, dict[str, Any]] = {
    "database.sessions": {"raise_at": 40, "clear_below": 30, "samples": 3, **_SATURATED},
    "database.connections": {"raise_at": 85, "clear_below": 75, "samples": 2, **_SATURATED, "severity": "critical"},
    "database.long_queries": {"raise_at": 5, "clear_below": 1, "samples": 2, **_SATURATED},
    "database.blocked": {"raise_at": 10, "clear_below": 2, "samples": 3, **_SATURATED},
    "pom.jobs": {"raise_at": 100, "clear_below": 80, "samples": 1, "severity": "minor", "imports": "queued"},
    "pom.agents": {"raise_at": 2000, "clear_below": 1800, "samples": 1, "severity": "minor"},
    "pom.imports": {"raise_at": 8, "clear_below": 6, "samples": 1, "severity": "minor", "imports": "queued"},
    "server.cpu": {"raise_at": 95, "clear_below": 80, "samples": 6, "severity": "minor"},
    "server.memory": {"raise_at": 90, "clear_below": 80, "samples": 2, "imports": "queued"},
}


class LoadConfig(pydantic.BaseModel):
    """The load monitor's configuration (stored in `load_config`, changed through
    `PUT /api/v1/load/config`). `LoadConfig.build(document)`: the metrics a document names are
    merged field by field over the defaults."""
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    sample_s: float = pydantic.Field(5.0, ge=0.2, le=3600, description="seconds between samples")
    long_query_s: float = pydantic.Field(30.0, gt=0, description="a query running this long counts as long")
    stale_s: float = pydantic.Field(60.0, gt=0, description="a server not heard of this long is gone: "
                                    "its alarms are cleared")
    thresholds: dict[str, Threshold] = pydantic.Field(
        default_factory=lambda: {m: Threshold(**t) for m, t in DEFAULT_THRESHOLDS.items()})

    @pydantic.field_validator("thresholds")
    @classmethod
    def _known(cls, value: dict[str, Threshold]) -> dict[str, Threshold]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
        return {**{m: Threshold(**t) for m, t in DEFAULT_THRESHOLDS.items()}, **value}

    @classmethod
    def build(cls, document: Mapping[str, Any] | None) -> "LoadConfig":
        """Validate a (partial) document: missing settings and metrics take the defaults, and a
        metric's missing fields its default's (ValidationError with the path of every fault)."""
        doc = dict(document or {})
        given = doc.get("thresholds")
        if isinstance(given, Mapping):
            doc["thresholds"] = {m: ({**DEFAULT_THRESHOLDS[m], **t} if m in DEFAULT_THRESHOLDS
                                     and isinstance(t, Mapping) else t) for m, t in given.items()}
        return cls.model_validate(doc)

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# -- alarms ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    """An alarm raised or cleared by a sample."""
    source: str
    raised: bool
    severity: str
    message: str
    value: float
    threshold: float                 # raise_at when raised, clear_below when cleared

    @property
    def metric(self) -> str:
        return parse_source(self.source)[0]

    @property
    def server(self) -> str | None:
        return parse_source(self.source)[1]

    def details(self) -> dict[str, Any]:
        return {"metric": self.metric, "server": self.server, "value": self.value, "threshold": self.threshold}


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def message(source: str, raised: bool, value: float, threshold: float) -> str:
    """`server.memory on 3f2a… = 93, at or over 90 (memory in use on the server, percent)`."""
    metric, server = parse_source(source)
    where = f" on {server}" if server else ""
    how = "at or over" if raised else "back under"
    return f"{metric}{where} = {_fmt(value)}, {how} {_fmt(threshold)} ({METRICS[metric]})"


class Hysteresis:
    """The alarm state of a set of sources across samples. Start it from the alarms already
    active (the table), so a restarted monitor neither raises them again nor forgets them."""

    def __init__(self, active: Iterable[str] = ()):
        self.active: set[str] = set(active)
        self._over: dict[str, int] = {}      # consecutive samples at or over raise_at (inactive)
        self._under: dict[str, int] = {}     # consecutive samples under clear_below (active)

    def observe(self, readings: Mapping[str, float], config: LoadConfig,
                server: str | None = None) -> list[Transition]:
        """One sample of some metrics (`server` for per-server ones): the alarms it raises or clears."""
        out = []
        for metric, value in readings.items():
            th = config.thresholds.get(metric)
            if th is None:
                continue
            source = alarm_source(metric, server)
            if not th.enabled:
                self._over.pop(source, None)
                if source in self.active:
                    out.append(self._clear(source, th, value, "the threshold was disabled"))
                continue
            if source not in self.active:
                self._over[source] = self._over.get(source, 0) + 1 if value >= th.raise_at else 0
                if self._over[source] >= th.samples:
                    self._over.pop(source)
                    self.active.add(source)
                    out.append(Transition(source, True, th.severity, message(source, True, value, th.raise_at),
                                          value, th.raise_at))
            else:
                self._under[source] = self._under.get(source, 0) + 1 if value < th.clear_below else 0
                if self._under[source] >= th.samples:
                    out.append(self._clear(source, th, value))
        return out

    def _clear(self, source: str, th: Threshold, value: float, why: str | None = None) -> Transition:
        self._under.pop(source, None)
        self.active.discard(source)
        text = message(source, False, value, th.clear_below) if why is None else f"{source}: {why}"
        return Transition(source, False, th.severity, text, value, th.clear_below)

    def sync(self, active: Iterable[str]) -> None:
        """Take the table's word for which of these sources are active (one cleared or raised
        elsewhere, e.g. a server's alarms cleared when it was taken for gone)."""
        active = set(active)
        self.forget(self.active - active)
        self.active |= active

    def forget(self, sources: Iterable[str]) -> None:
        """Sources cleared elsewhere (a server gone stale): no longer active here."""
        for s in list(sources):
            self.active.discard(s)
            self._under.pop(s, None)


# -- levels and restrictions ----------------------------------------------------------------------
def levels(active: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per component: `normal`, or the worst severity among its active alarms, and those
    alarms' sources. `active`: source -> severity."""
    out: dict[str, dict[str, Any]] = {c: {"level": "normal", "alarms": []} for c in COMPONENTS}
    for source, severity in sorted(active.items()):
        entry = out.setdefault(component(parse_source(source)[0]), {"level": "normal", "alarms": []})
        entry["alarms"].append(source)
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 1
        if entry["level"] == "normal" or rank > SEVERITIES.index(entry["level"]):
            entry["level"] = SEVERITIES[rank]
    return out


@dataclass(frozen=True)
class Restrictions:
    """What the active alarms impose. `dial_factor`: the fraction of their pace managers dial at
    (1: not slowed); `imports`: allowed, queued (a new import waits until lifted) or refused
    (the API answers 503); `reports`: allowed or limited (a short range only, core.reports);
    `purges`: allowed or deferred; `because`: restriction -> the alarm sources imposing it."""
    dial_factor: float = 1.0
    imports: str = "allowed"
    because: dict[str, list[str]] = field(default_factory=dict)
    reports: str = "allowed"
    purges: str = "allowed"

    def allows(self, action: str) -> bool:
        """`allows("import")`: may a new import start now? `allows("dial")`: is dialling at full
        pace? `allows("report")`: may a report cover its full range? `allows("purge")`: may a
        purge delete now?"""
        if action == "import":
            return self.imports == "allowed"
        if action == "dial":
            return self.dial_factor >= 1.0
        if action == "report":
            return self.reports == "allowed"
        if action == "purge":
            return self.purges == "allowed"
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return {"dial_factor": self.dial_factor, "imports": self.imports, "reports": self.reports,
                "purges": self.purges, "because": {k: list(v) for k, v in self.because.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Restrictions":
        return cls(float(d.get("dial_factor", 1.0)), str(d.get("imports", "allowed")),
                   {k: list(v) for k, v in (d.get("because") or {}).items()},
                   str(d.get("reports", "allowed")), str(d.get("purges", "allowed")))


NONE = Restrictions()


def restrictions(active: Iterable[str], config: LoadConfig) -> Restrictions:
    """The restrictions in force, from the active alarms' sources (a threshold disabled or
    unknown imposes nothing)."""
    factor, mode, reports, purges = 1.0, "allowed", "allowed", "allowed"
    because: dict[str, list[str]] = {}
    for source in sorted(set(active)):
        th = config.thresholds.get(parse_source(source)[0])
        if th is None or not th.enabled:
            continue
        if th.dial_factor is not None and th.dial_factor < 1.0:
            factor = min(factor, th.dial_factor)
            because.setdefault("dial_slowed", []).append(source)
        if th.imports is not None:
            if IMPORT_MODES.index(th.imports) > IMPORT_MODES.index(mode):
                mode = th.imports
            because.setdefault(f"imports_{th.imports}", []).append(source)
        if th.reports is not None:
            reports = th.reports
            because.setdefault("reports_limited", []).append(source)
        if th.purges is not None:
            purges = th.purges
            because.setdefault("purges_deferred", []).append(source)
    return Restrictions(factor, mode, because, reports, purges)


def stale_servers(sampled_age_s: Mapping[str, float], config: LoadConfig) -> set[str]:
    """Servers whose last sample is older than `stale_s` (their monitor, or the server, is gone)."""
    return {s for s, age in sampled_age_s.items() if age > config.stale_s}


class SlowDown:
    """Dialling slowed by a factor, exactly over time: each cycle's budget is scaled and the
    fractions carried to the next, so a factor of 0.5 on budgets of 1 dials every other cycle.
    The dials withheld are spent (not given back to the pacer), so a paced handler dials at
    `factor` times its rate."""

    def __init__(self) -> None:
        self._credit: dict[str, float] = {}

    def scale(self, key: str, budget: int, factor: float) -> int:
        if factor >= 1.0 or budget <= 0:
            self._credit.pop(key, None)
            return budget
        credit = min(self._credit.get(key, 0.0) + budget * factor, float(budget))
        allowed = int(credit)
        self._credit[key] = credit - allowed
        return allowed
