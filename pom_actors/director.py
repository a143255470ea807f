"""CampaignDirector actor: one per cluster (named, detached, restarted for ever), a thin shell
over `services.director.DirectorService`; `fleet.RayFleet` places the actors it asks for.

After a restart Ray builds it anew: the service rebuilds from PostgreSQL and the first ping
starts its loop again.
"""
from __future__ import annotations

import asyncio
from functools import partial

import ray

from .config import Settings
from .core.clock import clock_from_spec
from .fleet import RayFleet
from .names import DIRECTOR
from .services.director import DirectorService
from .services.import_schedules import ImportScheduleDuty
from .services.purges import PurgeDuty
from .store.director import DirectorStore
from .store.import_schedules import ImportScheduleStore
from .store.purges import PurgeStore
from .store.load import CachedRestrictions


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class CampaignDirector:
    def __init__(self, settings: Settings):
        clock = clock_from_spec(settings.clock)
        self.service = DirectorService(settings, open_store=partial(DirectorStore.open, settings.database_url),
                                       fleet=RayFleet(settings), clock=clock,
                                       restrictions=CachedRestrictions(lambda: self.service.store.conn),
                                       purges=PurgeDuty(open_store=partial(PurgeStore.open, settings.database_url),
                                                        clock=clock),
                                       import_schedules=ImportScheduleDuty(
                                           open_store=partial(ImportScheduleStore.open, settings.database_url),
                                           clock=clock))
        self._task: asyncio.Task | None = None
        ray.get_runtime_context().current_actor.ping.remote()

    async def ping(self) -> str:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.service.run())
        return DIRECTOR

    async def create_job(self, campaign: int | str, start: bool = True, zone: str | None = None) -> int:
        return await self.service.create_job(campaign, start, zone)

    async def command(self, job_id: int, event: str) -> str:
        return await self.service.command(job_id, event)

    async def drain(self, timeout_s: float = 15.0) -> dict[str, int]:
        return await self.service.drain(timeout_s)

    async def serve(self) -> None:
        await self.service.serve()

    async def status(self) -> dict:
        return {**self.service.status(), "node": ray.get_runtime_context().get_node_id()}
