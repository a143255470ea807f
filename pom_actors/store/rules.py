"""The rule engine's statements: the rules, DNC lookups per batch, and the history the
nuisance tracker is rebuilt from after a restart."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import orjson

from ..core.rules import Rule
from . import catalog
from .base import Store
from .work import in_flight_attempts


class RuleStore(Store):
    def rules(self) -> list[Rule]:
        return catalog.rules(self.conn)

    def dnc(self, addresses: Iterable[str], contact_ids: Iterable[int]) -> tuple[set[str], set[int]]:
        """The addresses and the contacts of a batch that are on a DNC list. The keys travel
        as JSON arrays (one C-speed dump; psycopg adapts a Python list element by element) and
        meet the DNC indexes through a semi-join."""
        addresses = orjson.dumps(list(addresses)).decode()
        contacts = orjson.dumps(list(contact_ids)).decode()
        dnc_addresses = {r[0] for r in self.conn.execute(
            "SELECT address FROM dnc_entries WHERE address IN "
            "(SELECT jsonb_array_elements_text(%s::jsonb))", (addresses,))}
        dnc_contacts = {r[0] for r in self.conn.execute(
            "SELECT contact_id FROM dnc_entries WHERE contact_id IN "
            "(SELECT jsonb_array_elements_text(%s::jsonb)::bigint)", (contacts,))}
        return dnc_addresses, dnc_contacts

    def dialled_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(address, time) of every allowed attempt since `since`, recorded or still in
        flight, oldest first: what the nuisance tracker counts."""
        recorded = self.conn.execute(
            "SELECT address, created_at FROM attempts WHERE verdict = 'allowed' AND address IS NOT NULL "
            "AND created_at > %s", (since,)).fetchall()
        return sorted(recorded + in_flight_attempts(self.conn), key=lambda r: r[1])
