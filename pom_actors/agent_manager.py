"""AgentManager actor: one per cluster (named, detached, restarted for ever), a thin shell over
`services.agent_manager.AgentManagerService`.

It rebuilds the agents from PostgreSQL when it starts (after a restart too), runs the tick
(timeouts, rebalance, one flush of the transitions) every `POM_TICK_S`, and answers the
gateway (agent desktops, supervisor pages) and the Campaign Managers. Desktops are served
through the change feed (services/agent_feed.py), streamed to each gateway process on a socket
of its own (`feed_address`, pom_actors/feed_stream.py; api/agent_hub.py), and `desks`, batches of desktops' commands
by login name (api/desk_batch.py). Jobs and license demands arrive as plain dicts (`JobSpec` /
`Demand` fields), so any process can send them.
License pools: `POM_LICENSE_PREVIEW_AGENTS`, `POM_LICENSE_PREDICTIVE_AGENTS`,
`POM_LICENSE_OUTBOUND_PORTS` (unset: unlimited).
"""
from __future__ import annotations

import asyncio
import logging
import os
from functools import partial

import ray

from . import names
from .config import Settings
from .core.agents.attachment import JobSpec
from .core.agents.licenses import Demand, LicensePools
from .core.clock import clock_from_spec
from .core.pacing.snapshot import PacerSnapshot
from .gil import favour_the_event_loop
from .media_gateway import RayAgentLegs
from .names import AGENT_MANAGER
from .services.agent_manager import AgentManagerService
from .store.agents import AgentStore

log = logging.getLogger(__name__)


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class AgentManager:
    def __init__(self, settings: Settings):
        self.service = AgentManagerService(settings, open_store=partial(AgentStore.open, settings.database_url),
                                           clock=clock_from_spec(settings.clock),
                                           pools=LicensePools.from_env(os.environ), legs=RayAgentLegs(),
                                           feed_host=ray.util.get_node_ip_address())
        self.service.rebuild()
        self._task: asyncio.Task | None = None
        favour_the_event_loop()         # its writes run in a worker thread
        ray.get_runtime_context().current_actor.ping.remote()

    async def _durable(self, answer):
        """`answer`, once what it reports is written: a caller is never told of a transition
        that a restart would lose (Ray retries a call the actor died before answering)."""
        await self.service.written()
        return answer

    async def ping(self) -> str:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.service.run())
        return AGENT_MANAGER

    # agents
    def add_agent(self, login: str, name: str = "", skills: list[str] = (), groups: list[str] = ()) -> int:
        return self.service.add_agent(login, name, skills, groups)

    def update_agent(self, login: str, **changes) -> dict:
        """name, skills, groups of agent `login` (those given)."""
        return self.service.update_agent(login, **changes)

    async def delete_agent(self, login: str) -> dict:
        """Delete a logged-out agent (its history stays; its tokens are revoked)."""
        return await self._durable(self.service.delete_agent(login))

    async def command(self, agent_id: int, command: str, reason: str | None = None) -> dict:
        """login, logout, ready, not_ready (reason), dispose (reason = code), force_logoff."""
        return await self._durable(self.service.command(agent_id, command, reason))

    def agent(self, agent_id: int) -> dict:
        return self.service.view(agent_id)

    def agent_by_login(self, login: str) -> dict:
        return self.service.view(self.service.agent_id(login))

    # desktops (the Agent SDK's WebSocket, through the gateway)
    async def desks(self, commands: list[tuple[str, str, dict]]) -> list:
        """A gateway's batch of desktop commands (login, command, arguments): each one's answer
        or the exception it raised, in order (api/desk_batch.py)."""
        return await self._durable(self.service.desk_many(commands))

    def views(self, logins: list[str]) -> dict:
        return self.service.views(logins)

    async def supervise(self, login: str, command: str, job_id: int | None = None, reason: str | None = None) -> dict:
        """force_logoff (reason) or move (job_id) of agent `login`."""
        return await self._durable(self.service.supervise(login, command, job_id=job_id, reason=reason))

    async def feed_address(self) -> dict:
        """Where a gateway reads the change feed, and the secret it opens with (pom_actors/feed_stream.py)."""
        return await self.service.streams.address()

    def agents(self, job_id: int | None = None, state: str | None = None, skill: str | None = None,
               after: int = 0, limit: int | None = None, group: str | None = None) -> list[dict]:
        return self.service.list_agents(job_id, state, skill, after, limit, group)

    def sessions(self) -> dict[str, dict]:
        """The agents' nailed sessions by login (core/agents/nailing.py)."""
        return self.service.sessions()

    # calls (Campaign Managers, the media gateway)
    async def reserve(self, job_id: int, call_ids: list[str],
                      screens: dict[str, dict] | None = None) -> dict[str, int | None]:
        return await self._durable(self.service.reserve_many(job_id, call_ids, screens))

    async def release(self, call_id: str, reason: str = "call gone") -> int | None:
        return await self._durable(self.service.release(call_id, reason))

    async def connect(self, call_id: str, screen: dict | None = None) -> int:
        return await self._durable(self.service.connect(call_id, screen))

    async def offer_cards(self, job_id: int, owner: str, new: dict[str, dict], shown: list[str] = (), **card) -> dict:
        """A Campaign Manager's preview round: new cards shown, answers taken (core/agents/preview.py).
        Answered once its reservations, accepts and releases are written: a card the manager
        is told of survives a restart as a reserved agent (a card lost with the actor comes
        back `cancelled` at the manager's next round, its contact never dialled)."""
        return await self._durable(self.service.offer_cards(job_id, owner, new, shown, **card))

    def take_dispositions(self, job_id: int | None = None) -> list[dict]:
        return self.service.take_dispositions(job_id)

    async def hangup(self, call_id: str) -> int:
        return await self._durable(self.service.hangup(call_id))

    async def settle_calls(self, connect: list[str] = (), release: list[str] = (), hangup: list[str] = ()) -> dict:
        """A Campaign Manager's batch: calls bridged, reservations given up, calls ended."""
        return await self._durable(self.service.settle_calls(connect, release, hangup))

    def snapshot(self, job_id: int, **extra) -> PacerSnapshot:
        return self.service.snapshot(job_id, **extra)

    # jobs, licenses, supervisor commands
    def set_jobs(self, jobs: list[dict], notifications: list[dict] = ()) -> None:
        self.service.set_jobs([JobSpec(**j) for j in jobs], [Demand(**d) for d in notifications])

    def set_job(self, job_id: int, **limits) -> dict:
        return self.service.set_job(job_id, **limits)

    async def move(self, agent_id: int, job_id: int | None) -> dict:
        return await self._durable(self.service.move(agent_id, job_id))

    def licenses(self) -> dict:
        return self.service.licenses()

    def ports(self, job_id: int, index: int, managers: int, in_use: int, held: int | None,
              wanting: bool) -> dict | None:
        """A notification job's manager asks for its cap on calls in flight (core/agents/ports.py)."""
        return self.service.ports(job_id, index, managers, in_use, held, wanting)

    def set_pools(self, pools: dict) -> dict:
        return self.service.set_pools(LicensePools(**pools))

    def jobs(self) -> dict[int, dict]:
        return self.service.targets()

    def metrics(self) -> dict:
        """Counts for the gateway's /metrics (one call per scrape)."""
        return {**self.service.metrics(), "node": ray.get_runtime_context().get_node_id()}

    def status(self) -> dict:
        return {**self.service.status(), "node": ray.get_runtime_context().get_node_id()}


class RayAgentSnapshots:
    """The Agent Manager as a Campaign Manager sees it: `snapshot(job_id, index, managers)`,
    this manager's share of the job's agents for its pacer; `reserve` and `settle_calls`, a
    batch per bridging, for the calls it bridges (core/agents/bridge.py). When the Agent Manager
    is not there or does not answer within `timeout_s`: no snapshot (the pacer dials nothing),
    `reserve` None (the calls wait, then are abandoned, and their reservations, should Ray's
    retry have made them, are released), the batch lost (a reservation left behind times out),
    no new cap on ports (the manager keeps the one it holds)."""

    def __init__(self, timeout_s: float = 1.0):
        self._handle = None
        self.timeout_s = timeout_s

    async def snapshot(self, job_id: int, index: int, managers: int) -> PacerSnapshot | None:
        return await self._call("snapshot", job_id, index=index, managers=managers)

    async def reserve(self, job_id: int, call_ids: list[str], screens: dict[str, dict]) -> dict[str, int | None] | None:
        return await self._call("reserve", job_id, call_ids, screens)

    async def settle_calls(self, connect: list[str], release: list[str], hangup: list[str]) -> dict | None:
        return await self._call("settle_calls", connect, release, hangup)

    async def offer_cards(self, job_id: int, owner: str, new: dict[str, dict], shown: list[str], **card) -> dict | None:
        return await self._call("offer_cards", job_id, owner, new, shown, **card)

    async def take_dispositions(self, job_id: int) -> list[dict] | None:
        return await self._call("take_dispositions", job_id)

    async def ports(self, job_id: int, index: int, managers: int, in_use: int, held: int | None,
                    wanting: bool) -> dict | None:
        return await self._call("ports", job_id, index, managers, in_use, held, wanting)

    async def _call(self, method: str, *args, **kw):
        if self._handle is None:
            self._handle = names.actor(AGENT_MANAGER)
            if self._handle is None:
                return None
        try:
            return await asyncio.wait_for(getattr(self._handle, method).remote(*args, **kw), self.timeout_s)
        except Exception:
            log.warning("agent manager %s failed", method, exc_info=True)
            self._handle = None           # found again next time (a restart or a new incarnation)
            return None
