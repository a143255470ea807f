"""`Wakeup`: what a long poll waits on — `wait(timeout_s)` returns at the next `ring()` or after
`timeout_s`, whichever comes first (every waiter is woken by one ring)."""
from __future__ import annotations

import asyncio


class Wakeup:
    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def ring(self) -> None:
        """Wake every `wait` under way."""
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, timeout_s: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
