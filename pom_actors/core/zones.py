"""Zones: groups of POM servers a job's managers are confined to, each with a failover zone.

Pure decisions (the director applies them every tick, the API checks changes with them):

* A zone's **state** is set by command: `up`, `down` (out of service) or `maintenance` (a
  planned outage: for placement the same as down; operators and dashboards tell them apart).
  The first schema called an up zone `active`: `parse_state` still reads it as `up`.
* A zone is **available** when it is up and at least one of its servers is alive: a zone
  whose servers are all gone counts as down, whatever its state says.
* A job **runs in** the first available zone along the failover chain from its own zone
  (`effective_zone`); None when none is: the job waits, placed nowhere, until one is. When
  its own zone is available again, the job goes back to it.
* **Failover chains** never loop: a failover that would close a cycle is refused
  (`check_failover`), and walking a chain stops at the first zone seen twice anyway.
* A server's zone is the `zone:<name>` Ray resource it carries (`names.zone_resource`);
  a POM server with none belongs to no zone and gets no managers (every start path gives
  one: `names.server_resources`, the default zone unless told otherwise).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from .. import names

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")      # safe in a Ray resource and a URL path


class ZoneState(StrEnum):
    UP = "up"
    DOWN = "down"
    MAINTENANCE = "maintenance"


LEGACY_STATES = {"active": ZoneState.UP}               # the first schema's default


class ZoneError(ValueError):
    """A zone change refused; `field` names the input at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # it crosses Ray calls (the director's create_job)
        return ZoneError, (self.field, str(self))


@dataclass(frozen=True)
class Zone:
    name: str
    state: ZoneState = ZoneState.UP
    failover: str | None = None


def parse_state(value: str) -> ZoneState:
    return LEGACY_STATES.get(value) or ZoneState(value)


def check_name(name: str, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ZoneError(field, f"a zone name is 1-63 characters of a-z, 0-9, '_', '.', '-', "
                               f"starting with a letter or digit: {name!r}")
    return name


def chain(zones: Mapping[str, Zone], start: str) -> list[str]:
    """`start`, its failover, that one's failover, ...; ends before the first zone seen twice
    or at a zone with no failover (a zone not in `zones` is up with no failover)."""
    out: list[str] = []
    zone: str | None = start
    while zone is not None and zone not in out:
        out.append(zone)
        zone = zones[zone].failover if zone in zones else None
    return out


def check_failover(zones: Mapping[str, Zone], name: str, failover: str | None) -> None:
    """Refuse a failover of `name` to a zone that does not exist, to itself, or to a zone whose
    chain leads back to `name` (ZoneError on field `failover_zone`)."""
    if failover is None:
        return
    check_name(failover, "failover_zone")
    if failover == name:
        raise ZoneError("failover_zone", f"zone {name!r} cannot fail over to itself")
    if failover not in zones:
        raise ZoneError("failover_zone", f"zone {failover!r} does not exist")
    loop = chain(zones, failover)
    if name in loop:
        path = " -> ".join([name, *loop[:loop.index(name) + 1]])
        raise ZoneError("failover_zone", f"failover cycle: {path}")


def available(zone: Zone, servers: Mapping[str, int]) -> bool:
    return zone.state == ZoneState.UP and servers.get(zone.name, 0) > 0


def effective_zone(home: str, zones: Mapping[str, Zone], servers: Mapping[str, int]) -> str | None:
    """The zone a job of zone `home` runs in now: the first available one along its failover
    chain; None if none is (the job waits)."""
    for name in chain(zones, home):
        if available(zones.get(name) or Zone(name), servers):
            return name
    return None


def servers_by_zone(nodes: Iterable[Mapping[str, float]]) -> Counter:
    """Live POM servers per zone, from each server's Ray resources; those carrying no zone
    resource are counted under None (they get no managers)."""
    counts: Counter = Counter()
    for resources in nodes:
        zones = [z for r in resources if (z := names.resource_zone(r))]
        counts.update(zones or [None])
    return counts


def status(zone: Zone, servers: Mapping[str, int]) -> str:
    """What a zone is, for placement: its state, or `down` when up with no live server."""
    return str(zone.state) if zone.state != ZoneState.UP or available(zone, servers) else str(ZoneState.DOWN)
