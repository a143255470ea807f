"""The actors the director places on the cluster, on Ray: one media gateway per POM server
(pinned to its node), and each job's managers in a placement group spread over the servers
of the zone the job runs in (every bundle asks for the zone's resource, `zone:<name>`).
The director's service decides when and where; this module knows how (`services.director.Fleet`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter

import ray
from ray.util.placement_group import get_placement_group, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from . import names
from .config import Settings
from .core.zones import servers_by_zone
from .load_monitor import LoadMonitor
from .manager import CampaignManager
from .media_gateway import MediaGateway

log = logging.getLogger(__name__)
SERVER_SHARE = 0.001          # of the `pom_server` resource: pins an actor to POM servers
ZONE_CHECK_S = 1.0            # servers per zone are read from Ray's control store at most this often


class RayFleet:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._zones: tuple[float, Counter] = (float("-inf"), Counter())

    @staticmethod
    def _server_nodes() -> list[dict]:
        return [n for n in ray.nodes() if n["Alive"] and names.SERVER_RESOURCE in n["Resources"]]

    def servers(self) -> int:
        return len(self._server_nodes())

    def zone_servers(self) -> Counter:
        """Live POM servers per zone (None: servers without a zone resource)."""
        at, counts = self._zones
        if time.monotonic() - at >= ZONE_CHECK_S:
            counts = servers_by_zone(n["Resources"] for n in self._server_nodes())
            self._zones = (time.monotonic(), counts)
        return counts

    def gateway_names(self) -> list[str]:
        return sorted(names.gateways())

    def ensure_gateways(self) -> None:
        """A gateway and a load monitor on every live POM server that has none."""
        present = names.gateways()
        nodes = self._server_nodes()
        self._ensure_load_monitors(nodes)
        for node in nodes:
            node_id = node["NodeID"]
            if any(names.on_node(g, node_id) for g in present):
                continue
            name = names.gateway_name(node_id)
            MediaGateway.options(
                name=name, lifetime="detached",
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(self.settings, name)
            names.gateways(refresh=True)
            log.info("started gateway %s", name)

    def _ensure_load_monitors(self, nodes: list[dict]) -> None:
        """A load monitor on every live POM server (named after its node, pinned to it)."""
        for node in nodes:
            name = names.load_monitor_name(node["NodeID"])
            if names.actor(name) is None:
                LoadMonitor.options(
                    name=name, lifetime="detached", get_if_exists=True,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(self.settings, node["NodeID"])
                log.info("started load monitor %s", name)

    async def managers(self, job_id: int, count: int, zone: str, draining: bool,
                       slow_factor: float = 1.0) -> list[str]:
        """Lease holders of the job's managers that answer now; missing ones are (re)created in
        the job's placement group in `zone`. The ping also tells each manager whether to claim
        (a restarted one waits for it) and the factor its dialling is slowed by (the load
        restrictions in force)."""
        pg = self._placement_group(job_id, count, zone)
        handles = []
        for i in range(count):
            name = names.manager_name(job_id, i)
            handles.append(names.actor(name) or CampaignManager.options(
                name=name, lifetime="detached", resources={names.SERVER_RESOURCE: SERVER_SHARE},
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i),
            ).remote(self.settings, job_id, i, count))
        return await self._ping(handles, draining, slow_factor)

    async def stop_claiming(self, job_id: int, count: int) -> list[str]:
        """Tell the job's existing managers to claim no more (a move out of their zone); the
        lease holders of those that answer. None is created."""
        handles = [h for i in range(count) if (h := names.actor(names.manager_name(job_id, i)))]
        return await self._ping(handles, True, None)

    async def _ping(self, handles: list, draining: bool, slow_factor: float | None) -> list[str]:
        pings = await asyncio.gather(*[asyncio.wait_for(h.ping.remote(draining, slow_factor), self.settings.ping_timeout_s)
                                       for h in handles], return_exceptions=True)
        return [p for p in pings if not isinstance(p, BaseException)]

    @staticmethod
    def _placement_group(job_id: int, count: int, zone: str):
        name = names.placement_group_name(job_id, zone)
        try:
            return get_placement_group(name)
        except ValueError:
            bundle = {names.SERVER_RESOURCE: SERVER_SHARE, names.zone_resource(zone): SERVER_SHARE}
            return placement_group([bundle] * count, strategy="SPREAD", name=name, lifetime="detached")

    def refresh(self, holders: set[str]) -> None:
        """Tell the holders' managers to renew (and adopt) at once."""
        for holder in holders:
            handle = names.actor(names.holder_actor(holder))
            if handle:
                handle.refresh.remote()

    async def drain(self, managers: list[str], timeout_s: float) -> dict[str, int]:
        """Stop the managers claiming and wait for their attempts; what each still has out
        (-1: it did not answer)."""
        handles = {n: h for n in managers if (h := names.actor(n))}
        left = await asyncio.gather(*[h.drain.remote(timeout_s) for h in handles.values()],
                                    return_exceptions=True)
        return {n: (r if isinstance(r, int) else -1) for n, r in zip(handles, left)}

    async def serve(self, managers: list[str]) -> None:
        for name in managers:
            handle = names.actor(name)
            if handle:
                await handle.serve.remote()

    def retire(self, job_id: int, count: int, zone: str | None) -> None:
        """The job's managers and its placement group in `zone` go (it ended, or moves)."""
        for i in range(count):
            handle = names.actor(names.manager_name(job_id, i))
            if handle:
                ray.kill(handle, no_restart=True)
        if zone is None:
            return
        try:
            remove_placement_group(get_placement_group(names.placement_group_name(job_id, zone)))
        except ValueError:
            pass

    def set_agent_jobs(self, jobs: list, notifications: list) -> None:
        """Tell the Agent Manager the running jobs (`JobSpec`s and port `Demand`s, as dicts);
        not awaited: a lost message is sent again at the next tick."""
        handle = getattr(self, "_agent_manager", None) or names.actor(names.AGENT_MANAGER)
        if handle is None:
            return
        self._agent_manager = handle
        handle.set_jobs.remote([j.as_dict() for j in jobs], [dataclasses.asdict(d) for d in notifications])
