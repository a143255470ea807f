"""Everything the RuleEngine does, as a plain class (the actor in `pom_actors/rule_engine.py`
only creates it and delegates).

It holds what the verdicts need across campaigns: the compiled rule sets (reloaded every few
seconds), and the nuisance tracker — every allowed attempt of every campaign passes through
here, so the rolling count per address is exact. It rebuilds the tracker from the ledger and
the attempts still in flight when it starts. DNC entries, with the DNC lists that apply to
each campaign of the batch, are read per batch and never cached: an entry added or a list
attached counts from the next batch checked, also for a job already running.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from ..core.clock import Clock
from ..core.nuisance import NuisanceTracker
from ..core.rules import Candidate, RuleSet, Verdict, evaluate
from ..store.rules import RuleStore

log = logging.getLogger(__name__)
RELOAD_S = 5.0
DEFAULT_HORIZON_S = 86400.0


class RuleService:
    def __init__(self, open_store: Callable[[], RuleStore], clock: Clock):
        self.open_store, self.clock = open_store, clock
        self.store = open_store()
        self.checked = 0
        self._load_rules()
        horizon = max([r.nuisance_period_s or 0 for r in self._all_sets()] + [DEFAULT_HORIZON_S])
        self.nuisance = NuisanceTracker(horizon_s=horizon)
        for address, at in self.store.dialled_since(self.clock.now() - timedelta(seconds=horizon)):
            self.nuisance.record(address, at)
        log.info("rule engine up: %d addresses tracked", len(self.nuisance))

    def _load_rules(self) -> None:
        self.rules = self.store.rules()
        self.sets: dict[int | None, RuleSet] = {None: RuleSet.compile(self.rules, None)}
        self.loaded_at = time.monotonic()

    def _all_sets(self) -> list[RuleSet]:
        campaigns = {r.campaign_id for r in self.rules if r.campaign_id is not None}
        return [self._set(c) for c in campaigns] + [self.sets[None]]

    def _set(self, campaign_id: int) -> RuleSet:
        if campaign_id not in self.sets:
            self.sets[campaign_id] = RuleSet.compile(self.rules, campaign_id)
        return self.sets[campaign_id]

    def check(self, candidates: list[Candidate]) -> list[Verdict]:
        """Verdicts for one batch of candidates, in order."""
        if self.store.broken:       # the database restarted since the last batch
            self.store = self.open_store()
        if time.monotonic() - self.loaded_at > RELOAD_S:
            self._load_rules()
        dnc_addresses, dnc_contacts = self.store.dnc({c.campaign_id for c in candidates},
                                                     {c.address for c in candidates if c.address},
                                                     {c.contact_id for c in candidates})
        sets = {c: self._set(c) for c in {c.campaign_id for c in candidates}}
        verdicts = evaluate(candidates, sets, self.clock.now(), dnc_addresses, dnc_contacts, self.nuisance)
        self.checked += len(candidates)
        return verdicts

    def reload(self) -> int:
        """Re-read the rules now (after an administrative change); returns their count."""
        self._load_rules()
        return len(self.rules)

    def status(self) -> dict:
        return {"state": "up", "checked": self.checked, "rules": len(self.rules),
                "tracked_addresses": len(self.nuisance)}
