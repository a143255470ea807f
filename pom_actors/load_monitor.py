"""LoadMonitor actor: one per POM server (named after its node, pinned to it, placed by the
director with the media gateways), a thin shell over `services.load_monitor.LoadMonitorService`.
It measures its server with psutil; the service does the rest.
"""
from __future__ import annotations

import asyncio
import logging
from functools import partial

import psutil
import ray

from . import names
from .config import Settings
from .services.load_monitor import LoadMonitorService
from .store.load import LoadStore

log = logging.getLogger(__name__)


def server_readings() -> dict[str, float]:
    """CPU in use since the previous call (the first call primes it) and memory in use, percent."""
    return {"server.cpu": psutil.cpu_percent(interval=None), "server.memory": psutil.virtual_memory().percent}


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class LoadMonitor:
    def __init__(self, settings: Settings, node_id: str):
        server_readings()
        self.service = LoadMonitorService(server=names.server_name(node_id), node_id=node_id,
                                          open_store=partial(LoadStore.open, settings.database_url),
                                          sample_server=server_readings)
        self._task: asyncio.Task | None = None
        ray.get_runtime_context().current_actor.ping.remote()

    async def ping(self) -> str:
        if self._task is None or self._task.done():
            if self._task is not None and self._task.exception():
                log.error("load monitor loop died: %r", self._task.exception())
            self._task = asyncio.get_running_loop().create_task(self.service.run())
        return self.service.server

    async def restrictions(self) -> dict:
        """The restrictions in force as of the last sample (no database read)."""
        return self.service.restrictions.to_dict()

    async def sample(self) -> list[dict]:
        """Sample now (besides the loop's): the alarms raised or cleared."""
        return [{"source": t.source, "raised": t.raised, "value": t.value}
                for t in await asyncio.to_thread(self.service.sample)]

    async def status(self) -> dict:
        return self.service.status()
