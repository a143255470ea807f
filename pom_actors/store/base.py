"""The base of the actors' stores."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .database import connect


class Store:
    """One actor's connection and the statements it runs on it. `open` makes a new one: an
    actor whose connection broke (the database restarted) opens another and goes on.
    `SESSION`: settings of the store's sessions (PostgreSQL `-c name=value` options)."""

    SESSION: dict[str, str] = {}

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    @classmethod
    def open(cls, url: str, *args):
        options = " ".join(f"-c {name}={value}" for name, value in cls.SESSION.items())
        return cls(connect(url, autocommit=True, **({"options": options} if options else {})), *args)

    @property
    def broken(self) -> bool:
        return self.conn.broken or self.conn.closed


def ping(conn: psycopg.Connection) -> None:
    """Raises unless the database answers on `conn`."""
    conn.execute("SELECT 1")


def read_document(conn: psycopg.Connection, table: str) -> Any:
    """The document of a one-row configuration table (`load_config`, `retention_config`: row
    id 1, column `config`); None if none was ever saved."""
    row = conn.execute(f"SELECT config FROM {table} WHERE id = 1").fetchone()
    return row[0] if row else None


def write_document(conn: psycopg.Connection, table: str, document: dict[str, Any]) -> None:
    conn.execute(f"INSERT INTO {table} (id, config, updated_at) VALUES (1, %s, now()) "
                 "ON CONFLICT (id) DO UPDATE SET config = excluded.config, updated_at = now()", (Jsonb(document),))
