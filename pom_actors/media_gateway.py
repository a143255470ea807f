"""MediaGateway actor: one per POM server, a thin shell over `media.gateway.Gateway`; and
`RayGateways`, the managers' way to reach the gateways of the cluster, and `RayAgentLegs`, the
Agent Manager's (its nailed agent sessions).

A gateway is named after its node and incarnation (`names.gateway_name`). Its order record
lives in its memory, so Ray must not restart it: a new incarnation with an empty record
would answer "never received" for what the dead one dialled. The director starts a new one
under a new name instead, and the reconciler treats the dead one's attempts as in doubt.
"""
from __future__ import annotations

import asyncio
import logging

import ray

from . import names
from .config import Settings
from .core.clock import clock_from_spec
from .core.orders import Order, OrderRecord, Outcome, Refusal
from .core.reconcile import GatewaySlow, GatewayUnreachable
from .core.wire import pack, unpack
from .heap import tune_for_batches
from .media.gateway import Gateway, gateway_config

log = logging.getLogger(__name__)


@ray.remote(max_restarts=0, max_task_retries=0, num_cpus=0)
class MediaGateway:
    def __init__(self, settings: Settings, name: str):
        self.gateway = Gateway(gateway_config(settings, name), clock_from_spec(settings.clock))
        tune_for_batches()

    async def submit(self, orders: bytes) -> bytes:
        """Orders packed by `core.wire`; the refusals come back packed."""
        return pack(await self.gateway.submit(unpack(Order, orders)))

    async def poll(self, reply_to: str, max_items: int = 10_000) -> bytes:
        """Outcomes for `reply_to`, packed by `core.wire`."""
        return pack(await self.gateway.poll(reply_to, max_items))

    async def answers(self, reply_to: str, wait_s: float) -> bytes:
        """The long poll of `reply_to`: its outcomes, packed, once an answered call is among
        them (empty after `wait_s` without one)."""
        return pack(await self.gateway.answers(reply_to, wait_s))

    async def bridge(self, calls: dict[str, int]) -> list[str]:
        """Answered calls onto agents (call -> agent id); the calls refused."""
        return await self.gateway.bridge(calls)

    async def nail(self, sessions: dict[str, int]) -> dict[str, int]:
        """The agents' nailed sessions to hold (session id -> agent id); the legs' counts."""
        return await self.gateway.nail(sessions)

    async def nail_changes(self, added: dict[str, int], released: list[str]) -> dict[str, int]:
        """The sessions to hold, as changes since the list this gateway last took."""
        return await self.gateway.nail_changes(added, released)

    async def lookup(self, attempt_ids: list[str]) -> bytes:
        """The order records of the ids received, packed (absent ids were never received)."""
        return pack((await self.gateway.lookup(attempt_ids)).values())

    async def fence(self, job_id: int, epochs: dict[int, int]) -> None:
        await self.gateway.fence(job_id, epochs)

    async def order_ids(self) -> list[str]:
        return await self.gateway.order_ids()

    async def stats(self) -> dict:
        return await self.gateway.stats()


class RayGateways:
    """The gateways of the cluster as a manager's cycle sees them (`services.manager`): by
    name, batches packed; a gateway's actor that died is `GatewayUnreachable`, one that does
    not answer within its timeout `GatewaySlow` — a lost server's actors stop answering
    seconds before Ray declares them dead, and a cycle must not wait for that."""

    CALL_TIMEOUT_S = {"submit": 10.0, "poll": 2.0, "lookup": 2.0, "fence": 1.0, "bridge": 1.0}
    ANSWERS_GRACE_S = 2.0         # an `answers` long poll: its wait, plus this

    def names(self) -> list[str]:
        return sorted(names.gateways())

    async def answers(self, name: str, reply_to: str, wait_s: float) -> list[Outcome]:
        return unpack(Outcome, await self._call(name, "answers", reply_to, wait_s,
                                                timeout_s=wait_s + self.ANSWERS_GRACE_S))

    async def submit(self, name: str, orders: list[Order]) -> list[Refusal]:
        return unpack(Refusal, await self._call(name, "submit", pack(orders)))

    async def poll(self, name: str, reply_to: str) -> list[Outcome]:
        return unpack(Outcome, await self._call(name, "poll", reply_to))

    async def lookup(self, name: str, attempt_ids: list[str]) -> dict[str, OrderRecord]:
        records = unpack(OrderRecord, await self._call(name, "lookup", attempt_ids))
        return {r.attempt_id: r for r in records}

    async def fence(self, name: str, job_id: int, epochs: dict[int, int]) -> None:
        await self._call(name, "fence", job_id, epochs)

    async def bridge(self, name: str, calls: dict[str, int]) -> list[str]:
        return await self._call(name, "bridge", calls)

    @classmethod
    async def _call(cls, name: str, method: str, *args, timeout_s: float | None = None):
        handle = names.gateways().get(name)
        if handle is None:
            raise GatewayUnreachable(name)
        try:
            return await asyncio.wait_for(getattr(handle, method).remote(*args),
                                          timeout_s or cls.CALL_TIMEOUT_S[method])
        except asyncio.TimeoutError as exc:
            raise GatewaySlow(name) from exc
        except ray.exceptions.RayActorError as exc:
            raise GatewayUnreachable(name) from exc


class RayAgentLegs:
    """The Agent Manager's way to the gateways for its nailed sessions (core/agents/nailing.py):
    `hold(sessions, version)` gives each gateway of the cluster the list (session id -> agent
    id) when it changed since that gateway last took it: the whole list to a gateway that holds
    none from here yet (a new incarnation has a new name), else only what changed since
    (`nail_changes`) — a job attaching 10,000 agents, 100 a tick, would otherwise send the whole
    growing list at every tick. A gateway that fails is given the whole list at the next call."""

    TIMEOUT_S = 2.0

    def __init__(self):
        self.told: dict[str, int] = {}                  # gateway -> version it holds
        self.held: dict[str, dict[str, int]] = {}       # gateway -> the list it holds

    async def hold(self, sessions: dict[str, int], version: int) -> dict[str, dict]:
        due = {n: h for n, h in names.gateways().items() if self.told.get(n) != version}
        calls = []
        for name, handle in due.items():
            held = self.held.get(name)
            if held is None:
                calls.append(handle.nail.remote(sessions))
            else:
                added = {sid: a for sid, a in sessions.items() if held.get(sid) != a}
                calls.append(handle.nail_changes.remote(added, [sid for sid in held if sid not in sessions]))
        answers = await asyncio.gather(*(asyncio.wait_for(c, self.TIMEOUT_S) for c in calls), return_exceptions=True)
        out = {}
        for name, answer in zip(due, answers):
            if isinstance(answer, BaseException):
                log.warning("gateway %s did not take the nailed sessions: %r", name, answer)
                self.told.pop(name, None)
                self.held.pop(name, None)
            else:
                self.told[name], self.held[name], out[name] = version, dict(sessions), answer
        return out
