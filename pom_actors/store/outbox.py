"""The relay's statements over `event_outbox`: the oldest unpublished rows, marking them
published, and the lag. Unpublished rows are found through a partial index on `id`
(`published_at IS NULL`), so reading them costs what is waiting, not what was ever written."""
from __future__ import annotations

from typing import Any

from .base import Store


class OutboxStore(Store):
    def unpublished(self, limit: int) -> list[tuple[int, str, str, Any]]:
        """(id, topic, key, payload) of the oldest unpublished rows, in id order."""
        return self.conn.execute(
            "SELECT id, topic, key, payload FROM event_outbox WHERE published_at IS NULL "
            "ORDER BY id LIMIT %s", (limit,)).fetchall()

    def mark_published(self, ids: list[int]) -> None:
        if ids:
            self.conn.execute("UPDATE event_outbox SET published_at = now() WHERE id = ANY(%s)", (ids,))

    def lag(self) -> tuple[int, float]:
        """Rows waiting, and the age in seconds of the oldest (0 when none wait)."""
        rows, oldest = self.conn.execute(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
            "FROM event_outbox WHERE published_at IS NULL").fetchone()
        return rows, float(oldest)
