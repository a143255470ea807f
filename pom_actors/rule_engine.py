"""RuleEngine actor: one per cluster, one call per claimed batch (principle 3).

It holds what the verdicts need across campaigns: the compiled rule sets (reloaded every few
seconds), and the nuisance tracker — every allowed attempt of every campaign passes through
here, so the rolling count per address is exact. After a restart it rebuilds the tracker from
the attempt ledger and the intents of the attempts still in flight. DNC entries are looked
up per batch, so a new entry counts at once.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import orjson
import ray

from .config import Settings
from .heap import tune_for_batches
from .core.clock import clock_from_spec
from .core.nuisance import NuisanceTracker
from .core.rules import Candidate, RuleSet, evaluate
from .core.wire import pack, unpack
from .store import catalog
from .store.database import connect
from .store.work import in_flight_attempts

log = logging.getLogger(__name__)
NAME = "pom-rule-engine"
RELOAD_S = 5.0


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class RuleEngine:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.clock = clock_from_spec(settings.clock)
        self.conn = connect(settings.database_url, autocommit=True)
        self.checked = 0
        self._load_rules()
        horizon = max([r.nuisance_period_s or 0 for r in self._all_sets()] + [86400.0])
        self.nuisance = NuisanceTracker(horizon_s=horizon)
        since = self.clock.now() - timedelta(seconds=horizon)
        recorded = self.conn.execute(
            "SELECT address, created_at FROM attempts WHERE verdict = 'allowed' AND address IS NOT NULL "
            "AND created_at > %s", (since,)).fetchall()
        for address, at in sorted(recorded + in_flight_attempts(self.conn), key=lambda r: r[1]):
            self.nuisance.record(address, at)
        log.info("rule engine up: %d addresses tracked", len(self.nuisance))
        tune_for_batches()

    def _load_rules(self) -> None:
        self.rules = catalog.rules(self.conn)
        self.sets: dict[int | None, RuleSet] = {None: RuleSet.compile(self.rules, None)}
        self.loaded_at = time.monotonic()

    def _all_sets(self) -> list[RuleSet]:
        campaigns = {r.campaign_id for r in self.rules if r.campaign_id is not None}
        return [self._set(c) for c in campaigns] + [self.sets[None]]

    def _set(self, campaign_id: int) -> RuleSet:
        if campaign_id not in self.sets:
            self.sets[campaign_id] = RuleSet.compile(self.rules, campaign_id)
        return self.sets[campaign_id]

    def check(self, packed: bytes) -> bytes:
        """Verdicts for one batch of candidates, in order (both packed by `core.wire`)."""
        candidates = unpack(Candidate, packed)
        if self.conn.broken or self.conn.closed:       # the database restarted since the last batch
            self.conn = connect(self.settings.database_url, autocommit=True)
        if time.monotonic() - self.loaded_at > RELOAD_S:
            self._load_rules()
        # The batch's keys travel as JSON arrays (one C-speed dump; psycopg adapts a Python
        # list element by element) and meet the DNC indexes through a semi-join.
        addresses = orjson.dumps(list({c.address for c in candidates if c.address})).decode()
        contacts = orjson.dumps(list({c.contact_id for c in candidates})).decode()
        dnc_addresses = {r[0] for r in self.conn.execute(
            "SELECT address FROM dnc_entries WHERE address IN "
            "(SELECT jsonb_array_elements_text(%s::jsonb))", (addresses,))}
        dnc_contacts = {r[0] for r in self.conn.execute(
            "SELECT contact_id FROM dnc_entries WHERE contact_id IN "
            "(SELECT jsonb_array_elements_text(%s::jsonb)::bigint)", (contacts,))}
        sets = {c: self._set(c) for c in {c.campaign_id for c in candidates}}
        verdicts = evaluate(candidates, sets, self.clock.now(), dnc_addresses, dnc_contacts, self.nuisance)
        self.checked += len(candidates)
        return pack(verdicts)

    def reload(self) -> int:
        """Re-read the rules now (after an administrative change); returns their count."""
        self._load_rules()
        return len(self.rules)

    def status(self) -> dict:
        return {"state": "up", "checked": self.checked, "rules": len(self.rules),
                "tracked_addresses": len(self.nuisance)}
