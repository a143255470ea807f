"""The rule engine's statements: the rules, DNC lookups per batch, and the history the
nuisance tracker is rebuilt from after a restart."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..core.rules import Rule
from . import catalog, dnc
from .base import Store
from .work import in_flight_attempts


class RuleStore(Store):
    def rules(self) -> list[Rule]:
        return catalog.rules(self.conn)

    def dnc(self, campaign_ids: Iterable[int], addresses: Iterable[str],
            contact_ids: Iterable[int]) -> tuple[dict[tuple[int, str], str], dict[tuple[int, int], str]]:
        """The addresses and the contacts of a batch on a DNC list that applies to their
        campaign (`store.dnc.hits`)."""
        return dnc.hits(self.conn, campaign_ids, addresses, contact_ids)

    def dialled_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(address, time) of every allowed attempt since `since`, recorded or still in
        flight, oldest first: what the nuisance tracker counts."""
        recorded = self.conn.execute(
            "SELECT address, created_at FROM attempts WHERE verdict = 'allowed' AND address IS NOT NULL "
            "AND created_at > %s", (since,)).fetchall()
        return sorted(recorded + in_flight_attempts(self.conn), key=lambda r: r[1])
