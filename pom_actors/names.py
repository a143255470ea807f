"""Every actor's name: how it is formatted, parsed and found, in one module.

Names are a protocol between processes: the director creates managers and gateways by name,
a manager finds the gateway of its own server by name, a lease names the incarnation of a
manager that holds it, and the API finds the actors it probes. Formatting and parsing are
plain functions (no Ray); only `actor` and `gateways` ask Ray, which they import when called.
"""
from __future__ import annotations

import secrets
import time
from typing import Any

NAMESPACE = "pom"
SERVER_RESOURCE = "pom_server"          # the Ray resource every POM server offers
ZONE_RESOURCE_PREFIX = "zone:"          # `zone:<name>`: the zone a POM server belongs to
DEFAULT_ZONE = "default"                # a server or campaign given no zone (POM_DEFAULT_ZONE)
DIRECTOR = "pom-director"
RULE_ENGINE = "pom-rule-engine"
AGENT_MANAGER = "pom-agent-manager"
EVENT_RELAY = "pom-event-relay"
IMPORTER = "pom-importer"
GATEWAY_PREFIX = "pom-gateway-"
MANAGER_PREFIX = "pom-manager-"
NODE_ID_CHARS = 12                      # how much of a Ray node id a gateway name carries
_HOLDER_SEP = "#"


def zone_resource(zone: str) -> str:
    """The Ray resource that puts a server in `zone`; managers of the zone's jobs ask for it."""
    return f"{ZONE_RESOURCE_PREFIX}{zone}"


def resource_zone(resource: str) -> str | None:
    """The zone a Ray resource name puts its server in; None for any other resource."""
    return resource[len(ZONE_RESOURCE_PREFIX):] or None if resource.startswith(ZONE_RESOURCE_PREFIX) else None


def server_resources(zone: str = DEFAULT_ZONE) -> dict[str, float]:
    """What a POM server offers Ray (`ray start --resources`): the server resource and its zone."""
    return {SERVER_RESOURCE: 1, zone_resource(zone): 1}


def manager_name(job_id: int, index: int) -> str:
    return f"{MANAGER_PREFIX}{job_id}-{index}"


def placement_group_name(job_id: int, zone: str) -> str:
    """A job's managers' placement group in a zone: a job that moves gets a new one."""
    return f"pom-pg-{job_id}-{zone}"


def new_holder(actor_name: str) -> str:
    """A lease holder: one incarnation of an actor. A restarted manager is a new holder, so
    taking its shards back bumps their epochs and fences whatever the old one left."""
    return f"{actor_name}{_HOLDER_SEP}{secrets.token_hex(4)}"


def holder_actor(holder: str) -> str:
    """The actor name of a lease holder."""
    return holder.split(_HOLDER_SEP, 1)[0]


def gateway_name(node_id: str) -> str:
    """A new gateway incarnation on `node_id`: one that starts anew is never taken for the
    one that died (whose order record died with it)."""
    return f"{GATEWAY_PREFIX}{node_id[:NODE_ID_CHARS]}-{secrets.token_hex(3)}"


def gateway_node(name: str) -> str | None:
    """The node id prefix a gateway name carries; None for a name that is not a gateway's."""
    if not name.startswith(GATEWAY_PREFIX):
        return None
    node = name[len(GATEWAY_PREFIX):].rsplit("-", 1)[0]
    return node or None


def on_node(gateway: str, node_id: str) -> bool:
    return gateway_node(gateway) == node_id[:NODE_ID_CHARS]


# -- finding (the only part that asks Ray) ----------------------------------------------------
_CACHE_S = 2.0
_cache: tuple[float, dict[str, Any]] = (0.0, {})


def actor(name: str) -> Any | None:
    """The handle of the live actor called `name` in this namespace, or None."""
    import ray

    try:
        return ray.get_actor(name)
    except ValueError:
        return None


def gateways(refresh: bool = False) -> dict[str, Any]:
    """Handles of every live media gateway of the cluster, by name (cached for a moment)."""
    import ray

    global _cache
    at, handles = _cache
    if refresh or time.monotonic() - at > _CACHE_S:
        handles = {}
        for name in ray.util.list_named_actors():
            if gateway_node(name) is not None and (handle := actor(name)) is not None:
                handles[name] = handle
        _cache = (time.monotonic(), handles)
    return handles


def restarts() -> dict[str, int]:
    """How many times Ray restarted each live POM actor, by name: one read of the GCS actor
    table, no call to any actor (the public state API needs Ray's dashboard, which POM does not
    start)."""
    from ray._private import state

    return {a["Name"]: a["NumRestarts"] for a in state.actors(actor_state_name="ALIVE").values()
            if a["Name"].startswith("pom-")}


def kind(name: str) -> str:
    """What a POM actor name is of: gateway, manager, load_monitor, or the singleton's name."""
    if gateway_node(name) is not None:
        return "gateway"
    if name.startswith(MANAGER_PREFIX):
        return "manager"
    if name.startswith(LOAD_MONITOR_PREFIX):
        return "load_monitor"
    return name


# -- load monitors: one per POM server, named after its node ----------------------------------
LOAD_MONITOR_PREFIX = "pom-load-"


def load_monitor_name(node_id: str) -> str:
    """The load monitor of a server: one name per node (a restarted one is the same monitor:
    it rebuilds its alarm state from the `alarms` table)."""
    return f"{LOAD_MONITOR_PREFIX}{server_name(node_id)}"


def server_name(node_id: str) -> str:
    """How a POM server is named in alarm sources, readings and metrics: its node id's prefix."""
    return node_id[:NODE_ID_CHARS]


def load_monitor_server(name: str) -> str | None:
    """The server a load monitor name is for; None for a name that is not a load monitor's."""
    return name[len(LOAD_MONITOR_PREFIX):] or None if name.startswith(LOAD_MONITOR_PREFIX) else None
