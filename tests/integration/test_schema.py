"""The migrations build exactly the schema the SQLModel tables declare, and carry data over."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import pom_actors.store.models  # noqa: F401  (registers the tables)
from pom_actors.store.database import alembic_config, libpq_url, sqlalchemy_url

from .conftest import scratch_database

SENT = datetime(2026, 11, 25, 15, 10, tzinfo=timezone.utc)


def test_migrated_database_matches_the_models(pom):
    engine = create_engine(sqlalchemy_url(pom.settings.database_url))
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
            methods = dict(conn.exec_driver_sql(
                "SELECT i.relname, am.amname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_am am ON am.oid = i.relam "
                "WHERE t.relname = 'attempts'").fetchall())
    finally:
        engine.dispose()
    assert methods == {"attempts_pkey": "btree", "ix_attempts_job_at": "btree", "ix_attempts_created_at": "brin"}


def test_migration_0002_moves_attempt_intents_onto_their_work_items(pom):
    """A database from revision 0001 with an attempt in flight: its intent row becomes the
    item's in_flight_* columns (the settlement writes the complete ledger row later)."""
    with scratch_database(pom.settings, "pom_migration_0002") as scratch:
        command.upgrade(alembic_config(scratch), "0001")
        with psycopg.connect(libpq_url(scratch), autocommit=True) as c:
            c.execute("INSERT INTO contact_lists (id, name) VALUES (1, 'l')")
            c.execute("INSERT INTO contacts (id, list_id, external_id) VALUES (1, 1, 'a'), (2, 1, 'b')")
            c.execute("INSERT INTO strategies (id, name) VALUES (1, 's')")
            c.execute("INSERT INTO campaigns (id, name, strategy_id, list_id) VALUES (1, 'c', 1, 1)")
            c.execute("INSERT INTO jobs (id, campaign_id, strategy_id, state) VALUES (1, 1, 1, 'running')")
            c.execute("INSERT INTO work_items (id, job_id, contact_id, shard, state, next_at, handler, attempts, "
                      "in_flight_epoch) VALUES (1, 1, 1, 0, 'in_flight', now(), 'call', 2, 5), "
                      "(2, 1, 2, 0, 'done', now(), 'call', 1, NULL)")
            c.execute("INSERT INTO attempts (work_item_id, attempt_no, job_id, campaign_id, contact_id, shard, "
                      "epoch, handler, channel, verdict, rule, gateway, code, created_at) VALUES "
                      "(1, 1, 1, 1, 1, 0, 4, 'call', 'call', 'allowed', 'allowed', 'gw-a', 'busy', %(t)s), "
                      "(1, 2, 1, 1, 1, 0, 5, 'call', 'call', 'allowed', 'allowed', 'gw-b', NULL, %(t2)s), "
                      "(2, 1, 1, 1, 2, 0, 5, 'call', 'call', 'allowed', 'allowed', 'gw-b', 'answer_human', %(t)s)",
                      {"t": SENT - timedelta(minutes=10), "t2": SENT})
        command.upgrade(alembic_config(scratch), "head")
        with psycopg.connect(libpq_url(scratch)) as c:
            assert c.execute("SELECT id, in_flight_epoch, in_flight_gateway, in_flight_at FROM work_items "
                             "ORDER BY id").fetchall() == [(1, 5, "gw-b", SENT), (2, None, None, None)]
            assert c.execute("SELECT work_item_id, attempt_no, code FROM attempts ORDER BY 1, 2").fetchall() \
                == [(1, 1, "busy"), (2, 1, "answer_human")]
