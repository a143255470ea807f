"""The desktops' commands of one gateway process, sent to the Agent Manager in batches.

Each command used to be one actor call, answered once its transition was written: 10,000
desktops at 100 calls a second made ~110 calls a second, and submitting them was the largest
single cost of the gateway's event loop (bench/agents.py, docs/benchmarks.md). Here a command
waits while a batch is on its way and goes with the next one, so the calls follow the Agent
Manager's write rounds instead of the desktops (group commit, as `AgentManagerService.written`
does for the writes). A desktop's commands stay in order: the hub awaits each before reading
the next frame.

`send(commands)` (one actor call, `AgentManager.desks`) returns a result per command, in
order: its answer, or the exception that command raised, given to that command's caller
alone. A batch that fails as a whole (time-out, the actor gone) fails each of its commands.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

MAX_BATCH = 1000        # commands in one call (a login storm goes in several)

Command = tuple[str, str, dict[str, Any]]          # login, command, its arguments


class DeskBatcher:
    def __init__(self, send: Callable[[list[Command]], Awaitable[list[Any]]], max_batch: int = MAX_BATCH):
        self.send, self.max_batch = send, max_batch
        self.waiting: list[tuple[Command, asyncio.Future]] = []
        self._sender: asyncio.Task | None = None
        self.stats = {"commands": 0, "batches": 0}

    async def desk(self, login: str, command: str, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append(((login, command, kw), future))
        # a sender of another loop (one closed with a batch out: a test client's) never ends
        if self._sender is None or self._sender.done() or self._sender.get_loop() is not loop:
            self.waiting = [(c, f) for c, f in self.waiting if f.get_loop() is loop]
            self._sender = loop.create_task(self._send_all())
        return await future

    async def _send_all(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[:self.max_batch], self.waiting[self.max_batch:]
            self.stats["batches"] += 1
            self.stats["commands"] += len(batch)
            try:
                results = await self.send([command for command, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():                   # its caller went away
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
