"""EventRelay actor: one per cluster, a thin shell over `services.event_relay.EventRelayService`
with an idempotent Kafka producer (`kafka.KafkaPublisher`). Ray restarts it; a restarted
relay starts again from the oldest unpublished outbox row."""
from __future__ import annotations

import asyncio
from functools import partial

import ray

from .config import Settings
from .kafka import KafkaPublisher
from .services.event_relay import EventRelayService
from .store.outbox import OutboxStore


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class EventRelay:
    def __init__(self, settings: Settings):
        self.service = EventRelayService(open_store=partial(OutboxStore.open, settings.database_url),
                                         publisher=KafkaPublisher(settings.kafka_bootstrap))
        self._task: asyncio.Task | None = None
        ray.get_runtime_context().current_actor.ping.remote()

    async def ping(self) -> str:
        """(Re)starts the loop, also after Ray restarted the actor."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.service.run())
        return "up"

    async def status(self) -> dict:
        return await asyncio.to_thread(self.service.status)
