"""CampaignManager actor: a thin shell over `services.manager.ManagerService`.

The shell wires the service to Ray (the rule engine and the gateways by name, this node's
id), starts its loop as soon as the actor is up — also after Ray restarted it — and answers
the director. A restarted incarnation is a new lease holder (`names.new_holder`).
"""
from __future__ import annotations

import asyncio
import logging
from functools import partial

import ray

from . import names
from .agent_manager import RayAgentSnapshots
from .config import Settings
from .core.clock import clock_from_spec
from .gil import favour_the_event_loop
from .heap import tune_for_batches
from .media_gateway import RayGateways
from .rule_engine import RayRules
from .services.manager import ManagerService
from .store.work import WorkStore

log = logging.getLogger(__name__)


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class CampaignManager:
    def __init__(self, settings: Settings, job_id: int, index: int, managers: int):
        name = names.manager_name(job_id, index)
        holder = names.new_holder(name)
        self.service = ManagerService(
            settings, job_id=job_id, name=name, holder=holder, managers=managers,
            open_store=partial(WorkStore.open, settings.database_url, job_id, holder),
            rules=RayRules(), gateways=RayGateways(), clock=clock_from_spec(settings.clock),
            node_id=ray.get_runtime_context().get_node_id(), agents=RayAgentSnapshots(), index=index)
        self._task: asyncio.Task | None = None
        tune_for_batches()
        favour_the_event_loop()         # its store's statements run in a worker thread
        ray.get_runtime_context().current_actor.ping.remote()

    async def ping(self, draining: bool | None = None, slow_factor: float | None = None) -> str:
        """Liveness probe of the director, answering the lease holder and passing on whether
        the server is draining and the factor dialling is slowed by (load restrictions); also
        (re)starts the loop after an actor restart."""
        if draining is not None:
            self.service.draining = draining
        if slow_factor is not None:
            self.service.slow_factor = slow_factor
        if self._task is None or self._task.done():
            if self._task is not None and self._task.exception():
                log.error("manager loop died: %r", self._task.exception())
            self._task = asyncio.get_running_loop().create_task(self.service.run())
        return self.service.holder

    async def refresh(self) -> None:
        self.service.refresh()

    async def drain(self, timeout_s: float) -> int:
        return await self.service.drain(timeout_s)

    async def serve(self) -> None:
        """Claim again after a drain (a new `pom run` attached to this running cluster)."""
        self.service.draining = False

    async def status(self) -> dict:
        return {**self.service.status(), "node": self.service.node_id}
