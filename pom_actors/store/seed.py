"""Reference data every database needs: the system completion codes and their flags."""
from __future__ import annotations

import psycopg

from ..core.codes import SYSTEM_CODES
from ..core.rules import DEFAULT_RULES
from .catalog import add_rule


def seed_reference_data(conn: psycopg.Connection) -> None:
    """Upsert the system codes (campaign_id NULL), so flags follow the code's definition."""
    rows = [(c.name, c.final, c.contact_uncallable, c.address_uncallable, c.human_contact,
             c.counts_as_abandon) for c in SYSTEM_CODES.values()]
    with conn.transaction():
        conn.execute("DELETE FROM completion_codes WHERE campaign_id IS NULL AND name <> ALL(%s)",
                     ([r[0] for r in rows],))
        with conn.cursor() as cur:
            for r in rows:
                updated = cur.execute(
                    "UPDATE completion_codes SET final=%s, contact_uncallable=%s, address_uncallable=%s, "
                    "human_contact=%s, counts_as_abandon=%s WHERE campaign_id IS NULL AND name=%s",
                    (*r[1:], r[0])).rowcount
                if not updated:
                    cur.execute(
                        "INSERT INTO completion_codes (campaign_id, name, final, contact_uncallable, "
                        "address_uncallable, human_contact, counts_as_abandon) "
                        "VALUES (NULL, %s, %s, %s, %s, %s, %s)", r)


def seed_default_rules(conn: psycopg.Connection) -> None:
    """A database without system rules gets the documented defaults (core.rules.DEFAULT_RULES)."""
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM rules WHERE campaign_id IS NULL LIMIT 1").fetchone():
            for rule in DEFAULT_RULES:
                add_rule(conn, rule)
