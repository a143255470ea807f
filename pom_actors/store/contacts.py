"""One contact and its attempts in SQL, for the web services an external application (an IVR,
a self-service portal) calls during a call: read a contact, merge into its attributes, delete it
(not while an attempt is in flight), read an attempt by id, the attempt in flight for a contact,
and set a settled attempt's code.

An attempt id is `<work_item_id>.<attempt_no>` (core.work.WorkItem.attempt_id): the attempt in
flight is the work item's (state `in_flight`, number `attempts`); a settled one is its ledger
row in `attempts`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core.agents.desk import DispositionError
from ..core.attributes import merge
from .catalog import NotFound

CONTACT_COLUMNS = ("id, list_id, external_id, first_name, last_name, phone1, phone2, email, phone1_type, "
                   "phone2_type, dnc, timezones, attributes, created_at")
SETTLED_COLUMNS = ("work_item_id, attempt_no, job_id, campaign_id, contact_id, handler, channel, address, "
                   "verdict, rule, reason, code, created_at, completed_at")


class AttemptConflict(RuntimeError):
    """The attempt's code cannot be set in its state (in flight, or never sent)."""


def attempt_id(work_item_id: int, attempt_no: int) -> str:
    return f"{work_item_id}.{attempt_no}"


def contact(conn: psycopg.Connection, contact_id: int, *, lock: bool = False) -> dict[str, Any]:
    """The contact `contact_id` (NotFound); `lock`: FOR UPDATE, inside the caller's transaction."""
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = %s{' FOR UPDATE' if lock else ''}",
        (contact_id,)).fetchone()
    if row is None:
        raise NotFound(f"contact {contact_id} does not exist")
    return row


def patch_attributes(conn: psycopg.Connection, contact_id: int, patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `patch` into the contact's attributes (core.attributes.merge, its bounds; the row
    locked so that two patches at once both land) and return the contact."""
    with conn.transaction():
        row = contact(conn, contact_id, lock=True)
        row["attributes"] = merge(row["attributes"] or {}, patch)
        conn.execute("UPDATE contacts SET attributes = %s WHERE id = %s", (Jsonb(row["attributes"]), contact_id))
    return row


def _settled_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": attempt_id(row.pop("work_item_id"), row["attempt_no"]), "state": "settled", **row}


def _in_flight_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": attempt_id(row["work_item_id"], row["attempts"]), "state": "in_flight",
            "attempt_no": row["attempts"], "job_id": row["job_id"], "campaign_id": row["campaign_id"],
            "contact_id": row["contact_id"], "handler": row["handler"], "channel": None, "address": None,
            "verdict": "allowed", "rule": None, "reason": "", "code": None,
            "created_at": row["in_flight_at"], "completed_at": None}


_IN_FLIGHT = ("SELECT w.id AS work_item_id, w.attempts, w.job_id, j.campaign_id, w.contact_id, w.handler, "
              "w.in_flight_at FROM work_items w JOIN jobs j ON j.id = w.job_id WHERE w.state = 'in_flight' ")


def attempt(conn: psycopg.Connection, work_item_id: int, attempt_no: int) -> dict[str, Any]:
    """The attempt `<work_item_id>.<attempt_no>`: settled (its ledger row) or in flight."""
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute(f"SELECT {SETTLED_COLUMNS} FROM attempts WHERE work_item_id = %s AND attempt_no = %s",
                      (work_item_id, attempt_no)).fetchone()
    if row is not None:
        return _settled_view(row)
    row = cur.execute(_IN_FLIGHT + "AND w.id = %s AND w.attempts = %s", (work_item_id, attempt_no)).fetchone()
    if row is None:
        raise NotFound(f"attempt {attempt_id(work_item_id, attempt_no)} does not exist")
    return _in_flight_view(row)


def current_attempt(conn: psycopg.Connection, contact_id: int) -> dict[str, Any] | None:
    """The contact's attempt in flight (in any job not ended), or None; NotFound for no such
    contact. The jobs are those over the contact's list (one of a job's `lists`), so the lookup
    runs on the in-flight index of each."""
    list_id = contact(conn, contact_id)["list_id"]
    row = conn.cursor(row_factory=dict_row).execute(
        _IN_FLIGHT + "AND w.contact_id = %s AND w.job_id = ANY(ARRAY(SELECT jj.id FROM jobs jj "
        "WHERE jj.lists @> jsonb_build_array(jsonb_build_object('list_id', %s::int)) AND jj.ended_at IS NULL)) "
        "ORDER BY w.in_flight_at DESC LIMIT 1", (contact_id, list_id)).fetchone()
    return None if row is None else _in_flight_view(row)


def delete_contact(conn: psycopg.Connection, contact_id: int) -> None:
    """Delete a contact so that no job dials it again: its work items in the jobs not ended
    over its list are done (they stay, with the attempts made, like the ledger's rows);
    AttemptConflict (409) while one of them has an attempt in flight. The items are locked
    first, so a claim either took one before (and the delete is refused) or finds it done.
    Finding them reads the items of those jobs (there is no index by contact on the hot path's
    table, on purpose); DNC entries naming the contact (opt-outs) stay."""
    with conn.transaction():
        list_id = contact(conn, contact_id, lock=True)["list_id"]
        items = conn.execute(
            "SELECT w.id, w.attempts, w.state FROM work_items w WHERE w.contact_id = %s AND w.job_id = ANY(ARRAY("
            "SELECT j.id FROM jobs j WHERE j.ended_at IS NULL AND "
            "j.lists @> jsonb_build_array(jsonb_build_object('list_id', %s::int)))) FOR UPDATE",
            (contact_id, list_id)).fetchall()
        flying = [attempt_id(item, number) for item, number, state in items if state == "in_flight"]
        if flying:
            raise AttemptConflict(f"contact {contact_id} has attempt {', '.join(flying)} in flight: "
                                  f"it can be deleted once the outcome has settled")
        conn.execute("UPDATE work_items SET state = 'done' WHERE id = ANY(%s) AND state <> 'done'",
                     ([item for item, _, _ in items],))
        conn.execute("DELETE FROM contacts WHERE id = %s", (contact_id,))


def campaign_codes(conn: psycopg.Connection, campaign_id: int) -> dict[str, bool]:
    """The completion codes of a campaign, the system's and its custom ones: name -> enabled."""
    return dict(conn.execute(
        "SELECT name, bool_and(enabled) FROM completion_codes WHERE campaign_id = %s OR campaign_id IS NULL "
        "GROUP BY name ORDER BY name", (campaign_id,)).fetchall())


def set_code(conn: psycopg.Connection, work_item_id: int, attempt_no: int, code: str) -> dict[str, Any]:
    """Set the completion code of a settled attempt that was sent: `code` must be one of its
    campaign's, not disabled (DispositionError at `code`). The code it had is kept in the row's details
    (`code_set`: from, at; setting the code it already has changes nothing, so a repeat keeps
    the first `from`); what became of the contact after the attempt is not replayed.
    AttemptConflict for an attempt in flight or refused by a rule; NotFound for none."""
    done = set_codes(conn, [(work_item_id, attempt_no, code)])[0]
    if isinstance(done, Exception):
        raise done
    return done


def set_codes(conn: psycopg.Connection, codes: Sequence[tuple[int, int, str]]) -> list[dict[str, Any] | Exception]:
    """`set_code` for a batch of (work item, attempt number, code), one code per attempt, in
    one transaction of a few statements whatever its size (a Campaign Manager applies its
    agents' dispositions so, on its event loop): for each, the attempt's settled view, or the
    error `set_code` raises for it (nothing written for that one)."""
    keys = [(w, n) for w, n, _ in codes]
    if len(set(keys)) < len(keys):
        raise ValueError("set_codes: one code per attempt")
    out: list[dict[str, Any] | Exception] = [NotFound(f"attempt {attempt_id(*k)} does not exist") for k in keys]
    if not codes:
        return out
    cur = conn.cursor(row_factory=dict_row)
    with conn.transaction():
        found = {(r["work_item_id"], r["attempt_no"]): r for r in cur.execute(
            "SELECT a.work_item_id, a.attempt_no, a.campaign_id, a.verdict, a.rule FROM attempts a "
            "JOIN unnest(%s::bigint[], %s::int[]) AS k(item, no) ON a.work_item_id = k.item AND a.attempt_no = k.no",
            ([w for w, _ in keys], [n for _, n in keys])).fetchall()}
        known = {c: campaign_codes(conn, c) for c in {r["campaign_id"] for r in found.values()}}
        todo: dict[tuple[int, int], int] = {}
        for i, (w, n, code) in enumerate(codes):
            try:
                _check_code(conn, w, n, code, found.get((w, n)), known)
                todo[(w, n)] = i
            except (AttemptConflict, DispositionError, NotFound) as e:
                out[i] = e
        if todo:
            for row in cur.execute(
                    "UPDATE attempts a SET code = v.code, details = CASE WHEN a.code = v.code THEN a.details "
                    "ELSE a.details || jsonb_build_object('code_set', jsonb_build_object('from', a.code, 'at', now())) END "
                    "FROM unnest(%s::bigint[], %s::int[], %s::text[]) AS v(item, no, code) "
                    f"WHERE a.work_item_id = v.item AND a.attempt_no = v.no RETURNING {_prefixed('a.', SETTLED_COLUMNS)}",
                    ([w for w, _ in todo], [n for _, n in todo], [codes[i][2] for i in todo.values()])).fetchall():
                i = todo[(row["work_item_id"], row["attempt_no"])]
                out[i] = _settled_view(row)
    return out


def _check_code(conn: psycopg.Connection, work_item_id: int, attempt_no: int, code: str,
                found: dict[str, Any] | None, known: dict[int, dict[str, bool]]) -> None:
    """Raise what `set_code` refuses for this attempt (`found`: its ledger row, or None)."""
    if found is None:                       # in flight, or NotFound
        raise AttemptConflict(f"attempt {attempt(conn, work_item_id, attempt_no)['id']} is in flight: its code "
                              f"can be set once its outcome has settled")
    name = attempt_id(work_item_id, attempt_no)
    if found["verdict"] != "allowed":
        raise AttemptConflict(f"attempt {name} was never sent (refused by rule {found['rule']})")
    codes = known[found["campaign_id"]]
    allowed = [c for c, enabled in codes.items() if enabled]
    if code in codes and not codes[code]:
        raise DispositionError("code", f"completion code {code!r} of campaign {found['campaign_id']} "
                                       f"is disabled (its codes: {', '.join(allowed)})")
    if code not in codes:
        raise DispositionError("code", f"{code!r} is not a completion code of campaign "
                                       f"{found['campaign_id']} (its codes: {', '.join(allowed)})")


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(alias + c.strip() for c in columns.split(","))
