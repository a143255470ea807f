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
            options = conn.exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE relname = 'attempts'").scalar()
    finally:
        engine.dispose()
    assert options == ["fillfactor=50"]
