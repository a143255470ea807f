"""RuleEngine actor: one per cluster, one call per claimed batch (principle 3); a thin shell
over `services.rule_engine.RuleService`. `RayRules` is the managers' way to reach it."""
from __future__ import annotations

from functools import partial

import ray

from . import names
from .config import Settings
from .core.clock import clock_from_spec
from .core.rules import Candidate, Verdict
from .core.wire import pack, unpack
from .heap import tune_for_batches
from .services.rule_engine import RuleService
from .store.rules import RuleStore


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class RuleEngine:
    def __init__(self, settings: Settings):
        self.service = RuleService(partial(RuleStore.open, settings.database_url), clock_from_spec(settings.clock))
        tune_for_batches()

    def check(self, packed: bytes) -> bytes:
        """Verdicts for one batch of candidates, in order (both packed by `core.wire`)."""
        return pack(self.service.check(unpack(Candidate, packed)))

    def reload(self) -> int:
        return self.service.reload()

    def status(self) -> dict:
        return self.service.status()


class RayRules:
    """The rule engine as a manager's cycle sees it: `check(candidates) -> verdicts`. The
    handle is found once: Ray restarts the actor behind it."""

    def __init__(self):
        self._handle = None

    async def check(self, candidates: list[Candidate]) -> list[Verdict]:
        if self._handle is None:
            self._handle = names.actor(names.RULE_ENGINE)
            if self._handle is None:
                raise RuntimeError("the rule engine is not running")
        return unpack(Verdict, await self._handle.check.remote(pack(candidates)))
