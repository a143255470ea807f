"""The Agent Manager's change feed: what every agent desktop is told, in one ordered log.

Every transition, attach, move, preview card and screen pop is appended with a sequence
number; a gateway process keeps one long poll on it (`wait` then `since`) and fans the frames
out to its agents' WebSockets (api/agent_hub.py), so no Ray call is made per agent or per
event. A cursor is `<incarnation>:<seq>`: a feed made anew (the Agent Manager restarted or
rebuilt) has a new incarnation, and a cursor of another one, or older than the entries kept,
gets `reset` — the gateway then re-reads its agents' views.
"""
from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..core.agents.state import Transition
from ..wakeup import Wakeup

FEED_MAX = 65_536             # feed entries kept for gateways that fall behind (then: reset)


class ChangeFeed:
    """`entries`: (seq, agent id, Transition | pushed frame); `login_of(agent id)` names the
    agent in each frame as it is read."""

    def __init__(self, login_of: Callable[[int], str | None], maxlen: int = FEED_MAX):
        self.login_of = login_of
        self.entries: deque[tuple[int, int, Any]] = deque(maxlen=maxlen)
        self.seq = 0
        self.incarnation = secrets.token_hex(4)
        self._wake = Wakeup()

    def __len__(self) -> int:
        return len(self.entries)

    def record(self, transitions: Iterable[Transition]) -> None:
        for t in transitions:
            self.seq += 1
            self.entries.append((self.seq, t.agent_id, t))
        self.notify()

    def push(self, agent_id: int, frame: dict[str, Any]) -> None:
        """Send `frame` (a preview card, a screen pop) to the agent's desktop."""
        self.seq += 1
        self.entries.append((self.seq, agent_id, frame))
        self.notify()

    def notify(self) -> None:
        """Wake the long polls waiting (also when this feed is replaced: they then reset)."""
        self._wake.ring()

    @property
    def cursor(self) -> str:
        return f"{self.incarnation}:{self.seq}"

    def _frame(self, seq: int, agent_id: int, entry: Any) -> dict[str, Any]:
        login = self.login_of(agent_id)
        if isinstance(entry, Transition):
            return {"type": "state", "seq": seq, "agent": login, "agent_id": agent_id, "state": str(entry.to_state),
                    "previous": str(entry.from_state), "event": entry.event, "reason": entry.reason,
                    "at": entry.at, "job_id": entry.job_id, "call_id": entry.call_id,
                    "deferred": entry.deferred, "pending": entry.pending, "wrap_until": entry.wrap_until}
        return {**entry, "seq": seq, "agent": login, "agent_id": agent_id}

    def since(self, cursor: str | None, limit: int = 10_000) -> dict[str, Any]:
        """The frames after `cursor` (at most `limit`), and the cursor to ask with next.
        `reset` is true when the cursor is of another incarnation or fell out of the feed:
        the caller must re-read its agents (`views`). No cursor: the current position."""
        seq = self._seq_of(cursor)
        if seq is None:
            return {"cursor": self.cursor, "reset": cursor is not None, "frames": []}
        out = []
        for entry in reversed(self.entries):
            if entry[0] <= seq:
                break
            out.append(entry)
        out.reverse()
        out = out[:limit]
        last = out[-1][0] if out else seq
        return {"cursor": f"{self.incarnation}:{last}", "reset": False,
                "frames": [self._frame(*e) for e in out]}

    def _seq_of(self, cursor: str | None) -> int | None:
        """The sequence number of a cursor of this incarnation still covered by the feed."""
        if not cursor:
            return None
        incarnation, _, seq = cursor.partition(":")
        if incarnation != self.incarnation or not seq.isdigit():
            return None
        n = int(seq)
        oldest = self.entries[0][0] if self.entries else self.seq + 1
        if n > self.seq or n < oldest - 1:
            return None
        return n

    async def wait(self, cursor: str | None, timeout_s: float) -> None:
        """Return at the first entry after `cursor`, or after `timeout_s`; at once when there
        is one already or the cursor is not this feed's position (the long poll)."""
        seq = self._seq_of(cursor)
        if seq is None or seq != self.seq or timeout_s <= 0:
            return
        await self._wake.wait(timeout_s)
