"""Imports from a SQL query: what is accepted as the query and the source, the outbound policy
on its host, its values as cells, and the importer's chunking of its rows with a resume."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pydantic
import pytest

from pom_actors.core.imports.query import MAX_QUERY_CHARS, PostgresSource, cell, query_fault
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.services.importer import ImporterService, parse_chunk


@pytest.mark.parametrize("query", [
    "SELECT 1",
    "select id, phone from people order by id;",
    "WITH p AS (SELECT * FROM people) SELECT * FROM p ORDER BY id",
    "SELECT ';' AS semi, 'it''s' AS quote, \"update\" AS col FROM t",
    "SELECT $$ ; DELETE $$ AS x /* ; drop */ -- ; insert",
    "SELECT $tag$ INSERT ; $tag$",
])
def test_one_select_is_accepted(query):
    assert query_fault(query) is None


@pytest.mark.parametrize("query, why", [
    ("", "empty"),
    ("  -- only a comment", "empty"),
    ("DELETE FROM people", "only a SELECT is accepted, not DELETE"),
    ("VALUES (1)", "not VALUES"),
    ("SELECT 1; DELETE FROM people", "only one statement"),
    ("SELECT 1; SELECT 2", "only one statement"),
    ("WITH d AS (DELETE FROM people RETURNING *) SELECT * FROM d", "DELETE is refused"),
    ("SELECT * INTO copy_of FROM people", "INTO is refused"),
    ("SELECT * FROM people FOR UPDATE", "UPDATE is refused"),
    ("SELECT 'unterminated", "unterminated"),
    ("SELECT 1 /* open", "unterminated"),
    ("WITH x AS (VALUES (1)) TABLE x", "only a SELECT"),
    ("SELECT 1 " + " " * MAX_QUERY_CHARS, "at most"),
])
def test_anything_else_is_refused_with_the_reason(query, why):
    assert why in query_fault(query)


def source(**fields) -> PostgresSource:
    return PostgresSource(**{"query": "SELECT 1;", "host": "db.example.com", "dbname": "crm", **fields})


def test_a_source_by_dsn_or_by_parts():
    by_dsn = PostgresSource(query="select 1", dsn="postgresql://reader@10.1.2.3:6432/crm?sslmode=require")
    assert by_dsn.connection() == {"user": "reader", "host": "10.1.2.3", "port": "6432", "dbname": "crm",
                                   "sslmode": "require"}
    assert by_dsn.label() == "postgres:10.1.2.3:6432/crm" and by_dsn.query == "select 1"
    parts = source(user="reader", port=5433, password_ref="POM_SOURCE_PASSWORD_CRM")
    assert parts.connection() == {"host": "db.example.com", "port": "5433", "dbname": "crm", "user": "reader"}
    assert parts.query == "SELECT 1"                                   # the final ';' removed


@pytest.mark.parametrize("fields, where, why", [
    ({"dsn": "postgresql://u:secret@h/db"}, "dsn", "may not carry a password"),
    ({"dsn": "host=h dbname=d passfile=/etc/passwd"}, "dsn", "'passfile' is not accepted"),
    ({"dsn": "host=h dbname=d options='-c x=y'"}, "dsn", "'options' is not accepted"),
    ({"dsn": "nonsense=1"}, "dsn", "not a valid DSN"),
    ({"dsn": "host=h dbname=d", "host": "h"}, None, "either dsn or host"),
    ({"host": "h"}, None, "needs a dbname"),
    ({"dbname": "d"}, None, "needs a host"),
    ({"host": "a,b", "dbname": "d"}, None, "one host"),
    ({"host": "h", "dbname": "d", "password_ref": "POM_DATABASE_URL"}, "password_ref", "pattern"),
    ({"host": "h", "dbname": "d", "password": "x"}, "password", "Extra inputs"),
    ({"host": "h", "dbname": "d", "fetch_rows": 10_000_000}, "fetch_rows", "less than"),
])
def test_bad_sources_name_the_field(fields, where, why):
    with pytest.raises(pydantic.ValidationError) as err:
        PostgresSource(query="SELECT 1", **fields)
    error = err.value.errors()[0]
    assert why in error["msg"]
    assert (error["loc"][0] if error["loc"] else None) == where
    assert "secret" not in error["msg"]                      # a DSN's password is never echoed


def test_the_password_comes_from_the_importer_environment_only():
    assert source().password({}) == ""
    named = source(password_ref="POM_SOURCE_PASSWORD_CRM")
    assert named.password({"POM_SOURCE_PASSWORD_CRM": "s3cret"}) == "s3cret"
    with pytest.raises(ValueError, match="not set"):
        named.password({})
    assert "s3cret" not in named.model_dump_json()


def test_the_outbound_policy_judges_every_address_of_the_host():
    public = source()
    assert public.target(OutboundPolicy(), lambda h: ["93.184.216.34"]) == (None, "93.184.216.34")
    fault, address = public.target(OutboundPolicy(), lambda h: ["93.184.216.34", "10.0.0.5"])
    assert address is None and "10.0.0.5 is a private address" in fault
    assert public.target(OutboundPolicy(["10.0.0.0/8"]), lambda h: ["10.0.0.5"]) == (None, "10.0.0.5")
    assert "169.254.169.254" in public.target(OutboundPolicy(), lambda h: ["169.254.169.254"])[0]

    def unknown(host):
        raise OSError("Name or service not known")
    assert "does not resolve" in public.target(OutboundPolicy(), unknown)[0]
    socket_dir = source(host="/run/postgresql")
    assert "loopback" in socket_dir.target(OutboundPolicy())[0]
    assert socket_dir.target(OutboundPolicy(["127.0.0.1"])) == (None, None)


def test_values_become_cells_as_a_file_would_hold_them():
    assert [cell(v) for v in (None, "x", 7, Decimal("1.50"), True, date(2026, 1, 2),
                              datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc), {"a": [1]}, b"\x01\xff")] == \
        ["", "x", "7", "1.50", "true", "2026-01-02", "2026-01-02T03:04:00+00:00", '{"a": [1]}', "\\x01ff"]


# -- the importer's query path, with in-memory stand-ins -----------------------------------------
class Rows:
    """A query's result: `fetch` and `skip` over a list, as `store.source.SourceQuery` does."""

    def __init__(self, columns, rows, fetch_rows):
        self.columns, self.rows, self.size, self.at = columns, rows, fetch_rows, 0
        self.fetched = self.skipped = 0

    def __call__(self, source, password, address):
        self.opened = (source.fetch_rows, password, address)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True

    def fetch(self):
        out = self.rows[self.at:self.at + self.size]
        self.at += len(out)
        self.fetched += len(out)
        return out

    def skip(self):
        n = len(self.rows[self.at:self.at + self.size])
        self.at += n
        self.skipped += n
        return n


class Store:
    """The import's row and its recorded chunks (store.imports.ImportStore's part the run uses)."""

    def __init__(self, query, options, done=()):
        self.row = {"id": 1, "kind": "contacts", "list_id": 5, "dnc_list_id": None, "state": "queued",
                    "path": None, "query": query, "options": options, "chunks": 0}
        self.done = {i: {"rows_loaded": 0} for i in done}
        self.message = None
        self.conn = self

    def close(self):
        pass

    def load(self, import_id):
        return dict(self.row)

    def state(self, import_id):
        return self.row["state"]

    def start(self, import_id, chunks):
        self.row["state"] = "running"
        return True

    def set_chunks(self, import_id, chunks):
        self.row["chunks"] = chunks

    def done_chunks(self, import_id):
        return set(self.done)

    def counts(self, import_id):
        return {"chunks_done": len(self.done), "rows_loaded": sum(c["rows_loaded"] for c in self.done.values()),
                "duplicates": 0}

    def finish(self, import_id, state, message=None):
        self.row["state"], self.message = state, message


def run_query(store, rows, environ=None, policy=None):
    loaded = []

    def submit(spec, data):
        parsed = parse_chunk(spec, data)
        store.done[spec.chunk] = {"rows_loaded": len(parsed.rows)}
        loaded.append((spec.chunk, spec.first_line, [r[:2] for r in parsed.rows], parsed.rejects))
        return {"chunk": spec.chunk}

    service = ImporterService(lambda: store, submit, lambda pending: (pending, []), parallel=2,
                              open_source=rows, policy=policy or OutboundPolicy(["127.0.0.1"]),
                              environ=environ or {})
    return service.run(1), loaded


QUERY = {"query": "SELECT id, phone FROM people ORDER BY id", "host": "127.0.0.1", "dbname": "crm",
         "fetch_rows": 100}


def test_a_query_is_cut_into_chunks_of_rows_numbered_from_one():
    people = [(i, f"+1212555{i:04d}") for i in range(1, 251)] + [(251, "not a number")]
    rows = Rows(["ID", "phone"], people, 100)
    store = Store(QUERY, {"region": "US"})
    state, loaded = run_query(store, rows)
    assert state == "done" and store.row["chunks"] == 3
    assert [(c, first) for c, first, _, _ in loaded] == [(0, 1), (1, 101), (2, 201)]
    assert loaded[0][2][0] == (1, "1") and loaded[2][2][-1] == (250, "250")
    assert [(r["line"], r["field"]) for r in loaded[2][3]] == [(251, "phone1")]
    assert rows.opened == (100, "", "127.0.0.1") and rows.closed


def test_a_resumed_query_import_skips_the_chunks_loaded_on_the_server():
    rows = Rows(["id", "phone"], [(i, f"+1212555{i:04d}") for i in range(1, 301)], 100)
    store = Store(QUERY, {"region": "US"}, done=[0, 1])
    state, loaded = run_query(store, rows)
    assert state == "done" and [c for c, *_ in loaded] == [2] and loaded[0][1] == 201
    assert (rows.skipped, rows.fetched) == (200, 100) and store.row["chunks"] == 3


@pytest.mark.parametrize("query, environ, columns, why", [
    ({**QUERY, "host": "10.9.9.9"}, {}, ["id"], "the source is refused: 10.9.9.9 is a private address"),
    ({**QUERY, "password_ref": "POM_SOURCE_PASSWORD_X"}, {}, ["id"], "POM_SOURCE_PASSWORD_X is not set"),
    (QUERY, {}, ["name", "phone"], "no column is the external_id"),
    (QUERY, {}, ["id", "ID"], "duplicate header name"),
])
def test_a_query_that_cannot_run_fails_the_import_with_the_reason(query, environ, columns, why):
    store = Store(query, {})
    state, loaded = run_query(store, Rows(columns, [], 100), environ)
    assert state == "failed" and why in store.message and loaded == []


def test_a_query_without_a_valid_row_fails():
    store = Store(QUERY, {})
    state, _ = run_query(store, Rows(["id", "phone"], [(1, "x")], 100))
    assert state == "failed" and store.message == "no valid row in the query's result"
