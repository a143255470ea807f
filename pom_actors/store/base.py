"""The base of the actors' stores."""
from __future__ import annotations

import psycopg

from .database import connect


class Store:
    """One actor's connection and the statements it runs on it. `open` makes a new one: an
    actor whose connection broke (the database restarted) opens another and goes on."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    @classmethod
    def open(cls, url: str, *args):
        return cls(connect(url, autocommit=True), *args)

    @property
    def broken(self) -> bool:
        return self.conn.broken or self.conn.closed


def ping(conn: psycopg.Connection) -> None:
    """Raises unless the database answers on `conn`."""
    conn.execute("SELECT 1")
