"""MediaGateway actor: one per POM server, a thin shell over `media.gateway.Gateway`.

It is named after its node and incarnation (`pom-gateway-<node id prefix>-<token>`), so that a
manager can prefer the gateway of its own server, any process can find all of them, and a
gateway started anew is never taken for the one that died (whose record died with it).
"""
from __future__ import annotations

import time
from collections.abc import Mapping

import ray

from .config import Settings
from .heap import tune_for_batches
from .core.clock import clock_from_spec
from .core.wire import pack, unpack
from .media.base import Order, Refusal
from .media.gateway import Gateway, GatewayConfig

PREFIX = "pom-gateway-"
_CACHE_S = 2.0
_cache: tuple[float, dict] = (0.0, {})


def gateways(refresh: bool = False) -> dict[str, "ray.actor.ActorHandle"]:
    """Handles of every live gateway of the cluster, by name (cached for a moment)."""
    global _cache
    at, handles = _cache
    if refresh or time.monotonic() - at > _CACHE_S:
        names = [n for n in ray.util.list_named_actors() if n.startswith(PREFIX)]
        handles = {}
        for n in names:
            try:
                handles[n] = ray.get_actor(n)
            except ValueError:
                continue
        _cache = (time.monotonic(), handles)
    return handles


def gateway_config(settings: Settings, name: str, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """The gateway's own environment (POM_SMTP_*, POM_SMS_*, POM_VOICE_PROFILE: see
    docs/media.md) over the server's settings: each POM server of a cluster may set its own
    mail relay or SMS gateway; what it leaves unset comes from the process that started the
    director."""
    given = {"smtp_host": settings.smtp_host, "smtp_port": settings.smtp_port,
             "smtp_user": settings.smtp_user, "smtp_password": settings.smtp_password,
             "smtp_starttls": settings.smtp_starttls, "sms_url": settings.sms_url,
             "sms_token": settings.sms_token}
    config = GatewayConfig.from_env(name, env, defaults={k: v for k, v in given.items() if v is not None})
    voice = config.voice.model_copy(update={"instant": settings.voice_instant or config.voice.instant,
                                            "seed": settings.voice_seed or config.voice.seed})
    return config.model_copy(update={"voice": voice})


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class MediaGateway:
    def __init__(self, settings: Settings, name: str):
        self.gateway = Gateway(gateway_config(settings, name), clock_from_spec(settings.clock))
        tune_for_batches()

    async def submit(self, orders: bytes) -> list[Refusal]:
        """Orders packed by `core.wire`."""
        return await self.gateway.submit(unpack(Order, orders))

    async def poll(self, reply_to: str, max_items: int = 10_000) -> bytes:
        """Outcomes for `reply_to`, packed by `core.wire`."""
        return pack(await self.gateway.poll(reply_to, max_items))

    async def lookup(self, attempt_ids: list[str]) -> dict[str, dict]:
        return await self.gateway.lookup(attempt_ids)

    async def fence(self, job_id: int, epochs: dict[int, int]) -> None:
        await self.gateway.fence(job_id, epochs)

    async def order_ids(self) -> list[str]:
        return await self.gateway.order_ids()

    async def stats(self) -> dict:
        return await self.gateway.stats()
