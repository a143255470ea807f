"""Simulated agents over real WebSockets working one job to its end: the harness of the
agent-based integration tests (test_bridging.py, test_preview.py)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from pom_actors.core.lifecycle import TERMINAL, JobState
from pom_actors.sim_agents import SimConfig, SimFloor
from pom_actors.store import jobs as jobstore

from .conftest import served_gateway


def work_job(pom, campaigns, conn, admin_token: str, campaign: int, logins: list[str], skill: str,
             config: SimConfig, timeout_s: float = 90,
             desk: Callable[[str, asyncio.Future], Awaitable[Any]] | None = None) -> dict[str, Any]:
    """Create the agents `logins` (skill `skill`), log them in over the gateway's agent WebSocket
    as simulated desktops (`config`), start `campaign` once they are ready and wait for its job
    to end; the floor's summary with `job`, the simulated agents (`agents`) and the calls whose
    screen popped (`pops`). `desk(address, job)`, if given, is a hand-driven desktop run beside
    the floor (`job`: a future of the job's id); what it returns is `desk` in the summary."""
    figures: dict[str, Any] = {}
    with served_gateway(pom.settings) as address:
        http = httpx.Client(base_url=f"http://{address}", timeout=30,
                            headers={"Authorization": f"Bearer {admin_token}"})
        for login in logins:
            r = http.post("/api/v1/agents", json={"login": login, "name": login, "skills": [skill]})
            assert r.status_code == 201, r.text

        async def scenario():
            floor = SimFloor(f"ws://{address}/api/v1/agents/ws", logins, config, token=admin_token)
            await floor.start()
            started = asyncio.get_running_loop().create_future()
            by_hand = asyncio.create_task(desk(address, started)) if desk is not None else None
            try:
                deadline = time.monotonic() + 20
                while {a.state for a in floor.agents} != {"ready"} and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                job = await asyncio.to_thread(campaigns.start, campaign)
                started.set_result(job)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    state = (await asyncio.to_thread(jobstore.job, conn, job))["state"]
                    if JobState(state) in TERMINAL:
                        break
                    await asyncio.sleep(0.2)
                deadline = time.monotonic() + 10             # the last wrap-ups disposed ...
                while any(a.state == "wrap_up" for a in floor.agents) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)                     # ... and their last flush
                if by_hand is not None:
                    figures["desk"] = await asyncio.wait_for(by_hand, 30)
                figures.update(floor.summary(), job=job, agents=floor.agents,
                               pops={c for a in floor.agents for c, _ in a.stats.call_arrivals})
            finally:
                if by_hand is not None:
                    by_hand.cancel()
                await floor.close()

        asyncio.run(scenario())
    return figures
