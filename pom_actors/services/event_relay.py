"""Everything the EventRelay does, as a plain class (the actor in `pom_actors/event_relay.py`
only creates it and runs it): the outbox to Kafka, at least once, in outbox order.

A batch of the oldest unpublished rows is fanned out into one message per event
(`core.events.messages`), published, and only once the broker acknowledged every message
are the rows marked published. A relay that dies between the two publishes the batch again:
the event ids are the same, so a consumer that dedupes by them sees each event once. While
the broker is away the rows wait in the outbox; nothing is lost.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from ..core.events import Message, messages
from ..store.outbox import OutboxStore

log = logging.getLogger(__name__)
BATCH_ROWS = 200            # outbox rows per publish (a manager's row holds up to a batch of events)
IDLE_S = 0.1
BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


class Publisher(Protocol):
    bootstrap: str
    def publish(self, messages: list[Message]) -> None: ...


class EventRelayService:
    def __init__(self, *, open_store: Callable[[], OutboxStore], publisher: Publisher,
                 batch_rows: int = BATCH_ROWS):
        self.open_store, self.publisher, self.batch_rows = open_store, publisher, batch_rows
        self.store = open_store()
        self.published = 0
        self.failures = 0
        self.last_error: str | None = None

    def relay_once(self) -> int:
        """Publish one batch; the number of events published (0: nothing waited)."""
        rows = self.store.unpublished(self.batch_rows)
        if not rows:
            return 0
        batch = [m for row in rows for m in messages(*row)]
        if batch:
            self.publisher.publish(batch)     # raises: nothing is marked, the rows go again
        self.store.mark_published([row[0] for row in rows])
        self.published += len(batch)
        self.last_error = None
        return len(batch)

    async def run(self) -> None:
        while True:
            try:
                sent = await asyncio.to_thread(self.relay_once)
                await asyncio.sleep(0 if sent else IDLE_S)
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("event relay: %s", self.last_error)
                self.recover()
                await asyncio.sleep(BACKOFF_S[min(self.failures, len(BACKOFF_S)) - 1])

    def recover(self) -> None:
        if self.store.broken:
            try:
                self.store = self.open_store()
            except Exception as exc:
                log.warning("event relay: database unreachable: %s", exc)

    def status(self) -> dict[str, Any]:
        rows, seconds = self.store.lag()
        return {"state": "up" if self.last_error is None else "failing", "broker": self.publisher.bootstrap,
                "published": self.published, "failures": self.failures, "last_error": self.last_error,
                "outbox_lag_rows": rows, "outbox_lag_s": round(seconds, 3)}
