"""The base of the actors' stores."""
from __future__ import annotations

import psycopg

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
