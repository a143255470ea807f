"""The AgentManager actor (`names.AGENT_MANAGER`) as the gateway reaches it.

* `AgentManagerClient`: blocking calls with a timeout, for the plain `def` REST routes (run in
  FastAPI's threadpool); the actor's own exceptions (UnknownAgent, IllegalAgentTransition,
  AttachmentError, DispositionError) are raised as themselves, for api/errors.py to answer.
* `RayAgentFeed`: awaitable calls for the agent WebSocket's hub (`api/agent_hub.py`): the
  desktop commands (`desk`, sent in batches: api/desk_batch.py), the views a resync reads,
  and the change feed, read off the Agent Manager's stream (pom_actors/feed_stream.py).

Ray is imported only when a call is made, so the routers import where Ray is not installed.
"""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from pom_actors import names
from pom_actors.core.agents.attachment import AttachmentError
from pom_actors.core.agents.desk import DispositionError
from pom_actors.core.agents.state import IllegalAgentTransition
from pom_actors.feed_stream import FeedStream
from pom_actors.services.agent_manager import UnknownAgent, UnknownCall

from .desk_batch import DeskBatcher
from .errors import NoAnswer, Unavailable, raises

CALL_TIMEOUT_S = 10.0
PASSED_ON = (UnknownAgent, UnknownCall, IllegalAgentTransition, AttachmentError, DispositionError)


def _handle() -> Any:
    handle = names.actor(names.AGENT_MANAGER)
    if handle is None:
        raise Unavailable("the agent manager is not running")
    return handle


def _unwrap(exc: BaseException) -> BaseException:
    """The actor's own exception inside a Ray error; Unavailable for a dead actor."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, PASSED_ON):
        return exc.cause
    if isinstance(exc, ray.exceptions.RayActorError):
        return Unavailable("the agent manager is not running")
    return exc


class AgentManagerClient:
    def __init__(self, handle: Any, timeout_s: float = CALL_TIMEOUT_S):
        self.handle, self.timeout_s = handle, timeout_s

    def call(self, method: str, *args: Any, **kw: Any) -> Any:
        import ray

        try:
            return ray.get(getattr(self.handle, method).remote(*args, **kw), timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise NoAnswer(f"the agent manager did not answer within {self.timeout_s:g} s") from None
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
            cause = _unwrap(exc)
            if cause is exc:
                raise
            raise cause from None


@raises(503, 504)
def agent_manager() -> AgentManagerClient:
    """FastAPI dependency: the Agent Manager for a REST route."""
    return AgentManagerClient(_handle())


class RayAgentFeed:
    """What the hub asks the Agent Manager, as coroutines (ObjectRefs are awaitable)."""

    def __init__(self, timeout_s: float = CALL_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._handle: Any = None
        self.desks = DeskBatcher(partial(self._call, "desks"))
        self.stream = FeedStream(partial(self._call, "feed_address"))

    def _actor(self) -> Any:
        if self._handle is None:
            self._handle = _handle()
        return self._handle

    async def _call(self, method: str, *args: Any, timeout_s: float | None = None, **kw: Any) -> Any:
        import ray

        try:
            ref = getattr(self._actor(), method).remote(*args, **kw)
            return await asyncio.wait_for(ref, timeout_s or self.timeout_s)
        except asyncio.TimeoutError:
            raise NoAnswer(f"the agent manager did not answer within {timeout_s or self.timeout_s:g} s") from None
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
            cause = _unwrap(exc)
            if isinstance(cause, Unavailable):
                self._handle = None
            if cause is exc:
                raise
            raise cause from None

    async def desk(self, login: str, command: str, **kw: Any) -> dict:
        """A desktop's command, in the next batch of this process's (api/desk_batch.py)."""
        return await self.desks.desk(login, command, **kw)

    async def views(self, logins: list[str]) -> dict:
        return await self._call("views", logins)

    async def changes(self, cursor: str | None, timeout_s: float) -> dict:
        """The feed's next answer after `cursor`, off the Agent Manager's stream (pom_actors/feed_stream.py)."""
        return await self.stream.changes(cursor, timeout_s)
