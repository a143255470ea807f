"""The migrations build exactly the schema the SQLModel tables declare."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import pom_actors.store.models  # noqa: F401  (registers the tables)
from pom_actors.store.database import sqlalchemy_url


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
    assert methods == {"attempts_pkey": "btree", "ix_attempts_job": "btree", "ix_attempts_created_at": "brin"}
