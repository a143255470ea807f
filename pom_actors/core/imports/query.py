"""An import whose rows come from a SQL query on another PostgreSQL database.

What is checked here, before any connection (a 422 at the field at fault):

* **the query** — one SELECT (or WITH … SELECT), at most `MAX_QUERY_CHARS`: comments,
  string literals, quoted identifiers and dollar quotes are skipped while looking for a second
  statement (`;`) or a word that writes (INSERT, UPDATE, DELETE, INTO, COPY...). This is a
  clear early answer, not the boundary: the query also runs in a READ ONLY transaction, as a
  server-side cursor (`DECLARE … CURSOR FOR` takes a SELECT or VALUES only), under a
  statement timeout — and the source's user should be a read-only role;
* **where it connects** — a DSN or host/port/dbname/user; never a password in the request: a
  password is named by `password_ref`, an environment variable of the importer
  (`POM_SOURCE_PASSWORD_<NAME>`), read when the import runs, so the database, the API's
  answers and the logs never hold it. Only the connection options below; the host is one
  host name, address or socket directory (a socket directory is judged as loopback);
* **the outbound policy** (`core.outbound`) — the host's every address must be allowed (public,
  or in POM_OUTBOUND_ALLOW), checked when the import is asked for and again when it runs, and
  the connection goes to the address checked (`hostaddr`), so a name cannot move meanwhile.

Rows are numbered from 1 in the query's order (a reject's `line`); a resumed import re-runs
the query and skips the chunks already loaded, so the query should have an ORDER BY that
makes its order total (without one the dedupe key still keeps a resumed import from
duplicating contacts, except under `keep_both`).
"""
from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any

import pydantic
from psycopg.conninfo import conninfo_to_dict

from ..outbound import OutboundPolicy

MAX_QUERY_CHARS = 20_000
PASSWORD_REF = r"^POM_SOURCE_PASSWORD_[A-Z0-9_]{1,60}$"
DSN_KEYS = frozenset({"host", "port", "dbname", "user", "sslmode", "connect_timeout", "application_name"})
WRITES = frozenset({"insert", "update", "delete", "merge", "truncate", "into", "copy", "create", "drop",
                    "alter", "grant", "revoke", "call", "vacuum", "refresh"})
_TOKEN = re.compile(r"""--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|(\$[A-Za-z_0-9]*\$).*?\1|"""
                    r"""(?P<word>[A-Za-z_][A-Za-z_0-9$]*)|(?P<semi>;)|(?P<open>/\*|'|"|\$[A-Za-z_0-9]*\$)""",
                    re.DOTALL)
Resolver = Callable[[str], list[str]]


def query_fault(query: str) -> str | None:
    """Why `query` is not one read-only SELECT, or None (see the module's doc)."""
    if len(query) > MAX_QUERY_CHARS:
        return f"the query has {len(query)} characters; at most {MAX_QUERY_CHARS}"
    words: list[str] = []
    ended = False
    for found in _TOKEN.finditer(query):
        if found["open"]:
            return "the query has an unterminated comment, string or quoted name"
        if found["semi"]:
            ended = True
            continue
        if found["word"]:
            if ended:
                return "only one statement is accepted (a ';' ends the query)"
            words.append(found["word"].lower())
    if not words:
        return "the query is empty"
    if words[0] not in ("select", "with"):
        return f"only a SELECT is accepted, not {words[0].upper()}"
    if "select" not in words:
        return "only a SELECT is accepted"
    writes = sorted(WRITES.intersection(words))
    if writes:
        return f"only a read-only SELECT is accepted: {writes[0].upper()} is refused"
    return None


def statement(query: str) -> str:
    """The query as declared in a cursor: trailing blanks and one final ';' removed."""
    return query.strip().rstrip(";").rstrip()


def system_resolver(host: str) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})


class PostgresSource(pydantic.BaseModel):
    """Where an import's rows come from: a database and one SELECT."""
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    query: str = pydantic.Field(max_length=MAX_QUERY_CHARS)
    dsn: str | None = pydantic.Field(None, max_length=1000,
                                     description="a libpq DSN or URL without a password")
    host: str | None = pydantic.Field(None, max_length=255)
    port: int = pydantic.Field(5432, ge=1, le=65535)
    dbname: str | None = pydantic.Field(None, max_length=63)
    user: str | None = pydantic.Field(None, max_length=63)
    password_ref: str | None = pydantic.Field(
        None, pattern=PASSWORD_REF, description="the importer's environment variable holding the password")
    sslmode: str | None = pydantic.Field(None, pattern=r"^(disable|allow|prefer|require|verify-ca|verify-full)$")
    fetch_rows: int = pydantic.Field(10_000, ge=100, le=100_000, description="rows per chunk")
    timeout_s: int = pydantic.Field(300, ge=1, le=3600, description="statement timeout on the source")

    @pydantic.field_validator("query")
    @classmethod
    def _one_select(cls, value: str) -> str:
        if (fault := query_fault(value)) is not None:
            raise ValueError(fault)
        return statement(value)

    @pydantic.field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        if value is not None:
            _dsn_options(value)
        return value

    @pydantic.model_validator(mode="after")
    def _one_way(self) -> "PostgresSource":
        if self.dsn is not None and (self.host or self.dbname or self.user):
            raise ValueError("give either dsn or host/dbname/user, not both")
        options = self.connection()
        if not options.get("host"):
            raise ValueError("the source needs a host (in dsn or host)")
        if not options.get("dbname"):
            raise ValueError("the source needs a dbname (in dsn or dbname)")
        if (fault := _host_fault(options["host"])) is not None:
            raise ValueError(fault)
        return self

    def connection(self) -> dict[str, str]:
        """The libpq options, without a password."""
        if self.dsn is not None:
            options = _dsn_options(self.dsn)
        else:
            options = {"host": self.host, "port": str(self.port), "dbname": self.dbname, "user": self.user}
        if self.sslmode:
            options["sslmode"] = self.sslmode
        return {k: v for k, v in options.items() if v}

    def label(self) -> str:
        """How an import names its source (its `source` column): no user, no password."""
        options = self.connection()
        return f"postgres:{options['host']}:{options.get('port', '5432')}/{options['dbname']}"

    def password(self, environ: Mapping[str, str]) -> str:
        """The password named by `password_ref` ("" without one); ValueError when unset."""
        if self.password_ref is None:
            return ""
        value = environ.get(self.password_ref)
        if value is None:
            raise ValueError(f"password_ref {self.password_ref} is not set in the importer's environment")
        return value

    def target(self, policy: OutboundPolicy, resolve: Resolver = system_resolver) -> tuple[str | None, str | None]:
        """(why the host is refused, None) or (None, the address to connect to): every address
        the host resolves to must be allowed; a socket directory is judged as 127.0.0.1."""
        host = self.connection()["host"]
        if host.startswith("/"):
            return policy.address_fault("127.0.0.1"), None
        try:
            addresses = resolve(host)
        except OSError as exc:
            return f"{host} does not resolve ({exc})", None
        if not addresses:
            return f"{host} does not resolve", None
        for address in addresses:
            if (fault := policy.address_fault(address.split("%", 1)[0])) is not None:
                return (fault if address == host.strip("[]") else f"{host}: {fault}"), None
        return None, addresses[0]


def _dsn_options(dsn: str) -> dict[str, str]:
    try:
        options = conninfo_to_dict(dsn)
    except Exception as exc:       # psycopg's ProgrammingError for a DSN it cannot read
        raise ValueError(f"not a valid DSN: {str(exc).splitlines()[0][:200]}") from None
    if "password" in options:
        raise ValueError("a DSN may not carry a password: name an environment variable in password_ref")
    unknown = sorted(set(options) - DSN_KEYS)
    if unknown:
        raise ValueError(f"DSN option {unknown[0]!r} is not accepted (only {', '.join(sorted(DSN_KEYS))})")
    return {k: str(v) for k, v in options.items()}


def _host_fault(host: str) -> str | None:
    if "," in host:
        return "the source names one host"
    if not re.fullmatch(r"/[\w./-]+|\[?[\w.:%-]+\]?", host):
        return f"host {host[:50]!r} is not a host name, an address or a socket directory"
    return None


def cell(value: Any) -> str:
    """A value of a source row as the text a file cell would hold ('' for NULL)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    return str(value)
