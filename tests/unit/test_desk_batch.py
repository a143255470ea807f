"""The desktops' commands sent in batches (api/desk_batch.py) and the Agent Manager's side of
a batch (`AgentManagerService.desk_many`)."""
from __future__ import annotations

import asyncio

import pytest

from api.desk_batch import DeskBatcher
from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.agents.state import IllegalAgentTransition
from pom_actors.services.agent_manager import UnknownAgent
from tests.unit.test_agent_manager_service import Floor


class Manager:
    """`send` of a batch: answered when `gate` opens; a command named `boom` raises alone."""

    def __init__(self):
        self.batches: list[list] = []
        self.gate = asyncio.Event()

    async def send(self, commands):
        self.batches.append(commands)
        await self.gate.wait()
        return [ValueError(f"no {login}") if command == "boom" else {"agent": login, "did": command}
                for login, command, _ in commands]


def test_commands_that_come_while_a_batch_is_out_go_together_in_the_next_each_answered_alone():
    async def run():
        m = Manager()
        batcher = DeskBatcher(m.send)
        first = asyncio.ensure_future(batcher.desk("a1", "ready"))
        await asyncio.sleep(0)
        later = [asyncio.ensure_future(batcher.desk(f"a{i}", c, reason="x"))
                 for i, c in ((2, "not_ready"), (3, "boom"), (4, "ready"))]
        await asyncio.sleep(0)
        assert m.batches == [[("a1", "ready", {})]]              # one out, the rest waiting
        m.gate.set()
        assert await first == {"agent": "a1", "did": "ready"}
        assert await later[0] == {"agent": "a2", "did": "not_ready"}
        with pytest.raises(ValueError, match="no a3"):
            await later[1]
        assert await later[2] == {"agent": "a4", "did": "ready"}
        assert m.batches[1] == [("a2", "not_ready", {"reason": "x"}), ("a3", "boom", {"reason": "x"}),
                                ("a4", "ready", {"reason": "x"})]
        assert batcher.stats == {"commands": 4, "batches": 2}

    asyncio.run(run())


def test_a_batch_that_fails_fails_each_of_its_commands_and_the_next_goes_on():
    async def run():
        calls = []

        async def send(commands):
            calls.append(commands)
            if len(calls) == 1:
                raise TimeoutError("no answer")
            return [{"ok": login} for login, _, _ in commands]

        batcher = DeskBatcher(send, max_batch=2)
        tasks = [asyncio.ensure_future(batcher.desk(f"a{i}", "ready")) for i in range(3)]
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert [type(d).__name__ for d in done[:2]] == ["TimeoutError", "TimeoutError"]
        assert done[2] == {"ok": "a2"} and [len(c) for c in calls] == [2, 1]   # at most max_batch a call

    asyncio.run(run())


def test_the_agent_manager_applies_a_batch_in_order_and_answers_each_command():
    f = Floor(2)
    f.svc.set_jobs([JobSpec(1)])
    out = f.svc.desk_many([("a0", "login", {}), ("a0", "ready", {}), ("a1", "ready", {}),
                           ("nobody", "ready", {}), ("a0", "not_ready", {"reason": "lunch"})])
    assert out[0]["agent"]["state"] == "not_ready" and out[1]["agent"]["state"] == "ready"
    assert isinstance(out[2], IllegalAgentTransition)               # a1 never logged in
    assert isinstance(out[3], UnknownAgent)
    assert out[4]["agent"]["state"] == "not_ready" and out[4]["agent"]["reason"] == "lunch"
    assert f.svc.view(f.ids[0])["state"] == "not_ready" and f.svc.view(f.ids[1])["state"] == "logged_out"


def test_a_batcher_whose_loop_closed_with_a_batch_out_answers_on_the_next_loop():
    answered = []

    async def send(commands):
        if not answered:                            # the first batch never comes back
            answered.append(None)
            await asyncio.Event().wait()
        return [{"ok": login} for login, _, _ in commands]

    batcher = DeskBatcher(send)
    old = asyncio.new_event_loop()
    old.create_task(batcher.desk("a1", "ready"))
    old.run_until_complete(asyncio.sleep(0.01))
    old.close()                                     # the batch still out, its sender never done
    assert asyncio.run(asyncio.wait_for(batcher.desk("a2", "ready"), 5)) == {"ok": "a2"}
