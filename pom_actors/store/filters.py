"""Filter templates in SQL: a parsed filter (core.filters) as a parameterised WHERE fragment.

`compile_sql` writes only fixed SQL: column names from a whitelist, keywords, operators and
`%s` placeholders. Every value of the filter — strings, numbers, dates, like patterns, attribute
names, zone names — and every constant the translation needs (JSON type names, the numeric and
date patterns) travels as a parameter, so no text of the user's reaches the SQL text. Each
construct mirrors the Python evaluator of core.filters value for value (three-valued logic
included); tests/integration/test_filters_sql.py holds the two to each other.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from ..core import filters as F

# Filter field -> column of `contacts`; nothing else is ever written as an identifier.
COLUMNS = {name: name for name in F.FIELDS}
_ALIAS = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SQL_TYPES = {"text": "text", "number": "numeric", "date": "date", "timestamp": "timestamptz", "bool": "boolean"}
_SQL_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
SAMPLE_COLUMNS = ("id", "external_id", "first_name", "last_name", "phone1", "phone2", "email",
                  "timezones", "attributes", "created_at")
MAX_SAMPLE = 1000


class _Compiler:
    def __init__(self, alias: str, binding: F.Binding):
        self.a, self.b = alias, binding
        self.params: list[Any] = []

    def p(self, value: Any, cast: str | None = None) -> str:
        self.params.append(value)
        return f"%s::{cast}" if cast else "%s"

    # -- values
    def attr(self, name: str, kind: str) -> str:
        a, p = self.a, self.p
        # Placeholders are numbered by position: each p() call must come in the order of the text.
        if kind == "text":
            key = p(name, "text")
            types = ", ".join(p(t, "text") for t in F.TEXT_JSON_TYPES)
            return (f"CASE WHEN jsonb_typeof({a}.attributes -> {key}) IN ({types}) "
                    f"THEN {a}.attributes ->> {p(name, 'text')} END")
        if kind == "number":
            return (f"CASE WHEN jsonb_typeof({a}.attributes -> {p(name, 'text')}) = {p('number', 'text')} "
                    f"THEN ({a}.attributes ->> {p(name, 'text')})::numeric "
                    f"WHEN ({a}.attributes ->> {p(name, 'text')}) ~ {p(F.NUMBER_PATTERN, 'text')} "
                    f"THEN ({a}.attributes ->> {p(name, 'text')})::numeric END")
        if kind == "date":
            # only a JSON string can match the pattern (a number's text has no '-' inside)
            return (f"CASE WHEN jsonb_typeof({a}.attributes -> {p(name, 'text')}) = {p('string', 'text')} "
                    f"AND ({a}.attributes ->> {p(name, 'text')}) ~ {p(F.DATE_PATTERN, 'text')} "
                    f"THEN ({a}.attributes ->> {p(name, 'text')})::date END")
        if kind == "bool":
            return (f"CASE WHEN ({a}.attributes ->> {p(name, 'text')}) IN ({p('true', 'text')}, {p('false', 'text')}) "
                    f"THEN ({a}.attributes ->> {p(name, 'text')}) = {p('true', 'text')} END")
        raise ValueError(f"attributes are not read as {kind}")

    def value(self, node: F.Operand, kind: str) -> str:
        if isinstance(node, F.FieldRef):
            return f"{self.a}.{COLUMNS[node.name]}"
        if isinstance(node, F.AttrRef):
            return self.attr(node.name, kind)
        if isinstance(node, F.Call):
            return f"substring(({self.value(node.arg, 'text')}) from {self.p(F.FUNCTION_PATTERNS[node.func], 'text')})"
        return self.p(F.constant(node, kind, self.b), _SQL_TYPES[kind])

    # -- predicates
    def expr(self, node: F.Expr) -> str:
        if isinstance(node, F.Const):
            return f"({self.p(node.value, 'boolean')})"
        if isinstance(node, F.Not):
            return f"(NOT {self.expr(node.item)})"
        if isinstance(node, (F.And, F.Or)):
            word = " AND " if isinstance(node, F.And) else " OR "
            return "(" + word.join(self.expr(i) for i in node.items) + ")"
        if isinstance(node, F.Compare):
            left = self.value(node.left, node.kind)
            collate = ' COLLATE "C"' if node.kind == "text" and node.op in F.ORDERING else ""
            return f"(({left}){collate} {_SQL_OPS[node.op]} ({self.value(node.right, node.kind)}))"
        if isinstance(node, F.InList):
            left = self.value(node.operand, node.kind)
            values = ", ".join(self.value(v, node.kind) for v in node.values)
            return f"(({left}) {'NOT IN' if node.negated else 'IN'} ({values}))"
        if isinstance(node, F.Like):
            left = self.value(node.operand, "text")
            return f"(({left}) COLLATE \"C\" {self.like_op(node)} {self.p(node.pattern, 'text')})"
        if isinstance(node, F.IsNull):
            operand = node.operand
            if isinstance(operand, F.AttrRef):      # missing or JSON null (either way ->> is NULL)
                inner = f"{self.a}.attributes ->> {self.p(operand.name, 'text')}"
            else:
                inner = self.value(operand, operand.type)
            return f"(({inner}) IS {'NOT ' if node.negated else ''}NULL)"
        if isinstance(node, F.ZoneIn):
            zones = ", ".join(self.p(z, "text") for z in node.zones)
            test = f"({self.a}.timezones && ARRAY[{zones}])"
            return f"(NOT {test})" if node.negated else test
        if isinstance(node, F.ZoneLike):
            test = (f"EXISTS (SELECT FROM unnest({self.a}.timezones) AS _z(zone) "
                    f"WHERE _z.zone COLLATE \"C\" {self.like_op(node, False)} {self.p(node.pattern, 'text')})")
            return f"(NOT {test})" if node.negated else f"({test})"
        if isinstance(node, F.ZoneEmpty):
            return f"(cardinality({self.a}.timezones) {'<>' if node.negated else '='} {self.p(0, 'integer')})"
        raise TypeError(f"not a filter node: {node!r}")

    @staticmethod
    def like_op(node: F.Like | F.ZoneLike, negatable: bool = True) -> str:
        word = "ILIKE" if node.ci else "LIKE"
        return f"NOT {word}" if negatable and node.negated else word


def compile_sql(expr: F.Filter | str, now: datetime, *, tz: str | ZoneInfo = "UTC", alias: str = "c",
                attributes: Iterable[str] | None = None) -> tuple[str, list[Any]]:
    """(WHERE fragment over `contacts` aliased `alias`, its parameters for psycopg's `%s`).

    `now` is the injected clock's time, which `now` and `today` (the date in `tz`) take; a text
    is parsed first, against `attributes` when given. The fragment is true exactly for the
    contacts core.filters.evaluate selects."""
    if not _ALIAS.match(alias):
        raise ValueError(f"not a table alias: {alias!r}")
    f = F.ensure(expr, attributes)
    compiler = _Compiler(alias, F.Binding.of(now, tz, f.source))
    return compiler.expr(f.root), compiler.params


def value_sql(field: str, kind: str, alias: str = "c") -> tuple[str, list[Any]]:
    """(SQL value, its parameters) of a contact field (F.FIELDS) or of a custom attribute
    `attr.NAME` read as `kind` exactly as a filter reads it: NULL when it is not of that kind.
    Lists' sort orders (store/dialling.py) order by it."""
    if not _ALIAS.match(alias):
        raise ValueError(f"not a table alias: {alias!r}")
    compiler = _Compiler(alias, F.Binding.of(datetime.now(timezone.utc), "UTC", ""))
    node = F.AttrRef(field[len("attr."):]) if field.startswith("attr.") else F.FieldRef(field)
    return compiler.value(node, kind), compiler.params


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(timezone.utc)


def parse_for_list(conn: psycopg.Connection, list_id: int, expr: F.Filter | str) -> F.Filter:
    """A filter text parsed against the custom attributes the list declares (NotFound if no list)."""
    from .catalog import list_attributes
    return F.ensure(expr, list_attributes(conn, list_id))


def preview(conn: psycopg.Connection, list_id: int, expr: F.Filter | str, sample: int = 10, *,
            now: datetime | None = None, tz: str | ZoneInfo = "UTC") -> tuple[int, list[dict[str, Any]]]:
    """How many contacts of a list the filter selects, and the first `sample` of them (by id).

    A text is parsed against the list's declared attributes (FilterError with the position of
    the fault). `now` should be the business clock's now (default: the system's)."""
    if not 0 <= sample <= MAX_SAMPLE:
        raise ValueError(f"sample must be between 0 and {MAX_SAMPLE}")
    f = parse_for_list(conn, list_id, expr)
    fragment, params = compile_sql(f, _now(now), tz=tz)
    where = f"c.list_id = %s AND {fragment}"
    count = conn.execute(f"SELECT count(*) FROM contacts c WHERE {where}", [list_id, *params]).fetchone()[0]
    rows: list[dict[str, Any]] = []
    if sample:
        columns = ", ".join(f"c.{name}" for name in SAMPLE_COLUMNS)
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(f"SELECT {columns} FROM contacts c WHERE {where} ORDER BY c.id LIMIT %s",
                               [list_id, *params, sample]).fetchall()
    return count, rows


def selected_ids(conn: psycopg.Connection, list_id: int, expr: F.Filter | str, *,
                 now: datetime | None = None, tz: str | ZoneInfo = "UTC") -> list[int]:
    """Ids of the list's contacts the filter selects, in id order."""
    f = parse_for_list(conn, list_id, expr)
    fragment, params = compile_sql(f, _now(now), tz=tz)
    return [r[0] for r in conn.execute(
        f"SELECT c.id FROM contacts c WHERE c.list_id = %s AND {fragment} ORDER BY c.id", [list_id, *params])]


# -- filter templates, a campaign's template, a job's filter in force ---------------------------
class FilterConflict(RuntimeError):
    """A template a campaign still uses cannot be deleted; an ended job's filter cannot change (409)."""


TEMPLATE_COLUMNS = "id, name, expression, description, created_at, updated_at"


def uses_clock(expr: F.Filter) -> bool:
    """Whether the filter reads `now` or `today` (its truth then moves with business time)."""
    from dataclasses import fields, is_dataclass
    stack: list[Any] = [expr.root]
    while stack:
        node = stack.pop()
        if isinstance(node, (F.Now, F.Today)):
            return True
        if isinstance(node, (list, tuple)):
            stack.extend(node)
        elif is_dataclass(node):
            stack.extend(getattr(node, f.name) for f in fields(node))
    return False


def _template_lists(conn: psycopg.Connection, template_id: int) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT l.list_id FROM campaigns c JOIN campaign_lists l ON l.campaign_id = c.id "
        "WHERE c.filter_id = %s ORDER BY 1", (template_id,))]


def create_template(conn: psycopg.Connection, name: str, expression: str, description: str = "") -> dict[str, Any]:
    """A template, its expression parsed first (FilterError). Not tied to a list: the attribute
    names it reads are checked against a campaign's list when a campaign takes it."""
    F.parse(expression)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"INSERT INTO filter_templates (name, expression, description) VALUES (%s, %s, %s) "
                           f"RETURNING {TEMPLATE_COLUMNS}", (name, expression, description)).fetchone()


def template(conn: psycopg.Connection, template_id: int) -> dict[str, Any]:
    from .catalog import NotFound
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {TEMPLATE_COLUMNS} FROM filter_templates WHERE id = %s",
                          (template_id,)).fetchone()
    if not row:
        raise NotFound(f"filter {template_id} does not exist")
    return row


def templates(conn: psycopg.Connection, *, name: str | None = None, after: int = 0,
              limit: int | None = None) -> list[dict[str, Any]]:
    """Templates by id above `after`, at most `limit`; only the one named `name` if given."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {TEMPLATE_COLUMNS} FROM filter_templates WHERE id > %s "
                           "AND (%s::text IS NULL OR name = %s) ORDER BY id LIMIT %s", (after, name, name, limit)).fetchall()


def update_template(conn: psycopg.Connection, template_id: int, *, expression: str | None = None,
                    name: str | None = None, description: str | None = None) -> dict[str, Any]:
    """Change a template: a new expression is checked against the list of every campaign that
    uses it. Jobs already created keep their own copy (change those with `set_job_filter`)."""
    from .catalog import list_attributes
    template(conn, template_id)                     # NotFound first
    if expression is not None:
        F.parse(expression)
        for list_id in _template_lists(conn, template_id):
            F.parse(expression, list_attributes(conn, list_id))
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "UPDATE filter_templates SET expression = coalesce(%s, expression), name = coalesce(%s, name), "
            "description = coalesce(%s, description), updated_at = now() WHERE id = %s "
            f"RETURNING {TEMPLATE_COLUMNS}", (expression, name, description, template_id)).fetchone()


def delete_template(conn: psycopg.Connection, template_id: int) -> None:
    template(conn, template_id)
    users = conn.execute("SELECT name FROM campaigns WHERE filter_id = %s ORDER BY id", (template_id,)).fetchall()
    if users:
        raise FilterConflict(f"filter {template_id} is used by campaign(s) {', '.join(r[0] for r in users)}")
    conn.execute("DELETE FROM filter_templates WHERE id = %s", (template_id,))


def check_for_list(conn: psycopg.Connection, list_id: int, template_id: int) -> F.Filter:
    """The template's expression parsed against a list's attributes (FilterError, NotFound)."""
    return parse_for_list(conn, list_id, template(conn, template_id)["expression"])


def job_filter(conn: psycopg.Connection, job_id: int) -> str | None:
    from .catalog import NotFound
    row = conn.execute("SELECT filter FROM jobs WHERE id = %s", (job_id,)).fetchone()
    if not row:
        raise NotFound(f"job {job_id} does not exist")
    return row[0]


def set_job_filter(conn: psycopg.Connection, job_id: int, expression: str | None) -> str | None:
    """Change the filter in force of a job that has not ended (None: no filter), checked against
    the attributes of each of its lists. Its managers read it at their next lease renewal and
    claim by it."""
    from ..core.lifecycle import TERMINAL, JobState
    from .catalog import NotFound
    row = conn.execute("SELECT state, lists FROM jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
    if not row:
        raise NotFound(f"job {job_id} does not exist")
    state, lists = row
    if JobState(state) in TERMINAL:
        raise FilterConflict(f"job {job_id} has ended ({state}): its filter cannot change")
    if expression is not None:
        for entry in lists:
            parse_for_list(conn, entry["list_id"], expression)
    conn.execute("UPDATE jobs SET filter = %s WHERE id = %s", (expression, job_id))
    return expression
