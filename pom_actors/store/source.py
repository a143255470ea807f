"""Rows of an import's SQL query, read from the source database (core/imports/query.py).

One connection per run of an import, one transaction, REPEATABLE READ and READ ONLY, with a
statement timeout; the query is declared as a server-side cursor and fetched `fetch_rows`
at a time, so the importer holds at most a few chunks whatever the result's size. A chunk
already loaded (a resumed import) is skipped with MOVE: its rows never leave the server.
The password is passed only to libpq (never a PGPASSWORD or a password file of the
importer's machine: `passfile` points nowhere).
"""
from __future__ import annotations

import os

import psycopg

from ..core.imports.query import PostgresSource

CURSOR = "pom_import"


class SourceQuery:
    """`with SourceQuery(source, password, address) as rows:` — `rows.columns`, `rows.fetch()`,
    `rows.skip()`."""

    def __init__(self, source: PostgresSource, password: str, address: str | None):
        options = source.connection()
        if address is not None:
            options["hostaddr"] = address          # the address the outbound policy allowed
        self.source, self.options, self.password = source, options, password
        self.conn: psycopg.Connection | None = None
        self.columns: list[str] = []

    def __enter__(self) -> "SourceQuery":
        self.conn = psycopg.connect(**self.options, password=self.password, passfile=os.devnull,
                                    connect_timeout=min(30, self.source.timeout_s),
                                    application_name="pom-importer", autocommit=False)
        try:
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self.conn.execute("SELECT set_config('statement_timeout', %s, true)",
                              (f"{self.source.timeout_s}s",))
            self.cursor = self.conn.cursor(name=CURSOR)
            self.cursor.execute(self.source.query)
            self.columns = [d.name for d in self.cursor.description or ()]
        except BaseException:
            self.conn.close()
            raise
        return self

    def fetch(self) -> list[tuple]:
        """The next chunk's rows (fewer than `fetch_rows`: the last)."""
        return self.cursor.fetchmany(self.source.fetch_rows)

    def skip(self) -> int:
        """Pass over the next chunk's rows on the server; how many there were."""
        return self.conn.execute(f"MOVE FORWARD {self.source.fetch_rows} FROM {CURSOR}").rowcount

    def __exit__(self, *exc) -> None:
        try:
            self.conn.rollback()                    # read only: nothing to keep
        finally:
            self.conn.close()
