"""File splitters through the API: one CSV split into three lists by a column rule, every row in
exactly one list, counted per list; a bad definition or a missing target list refused before anything starts;
a chunk loaded twice (a resumed import) merges nothing twice."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from pom_actors.core.imports.rows import Options
from pom_actors.services.importer import ChunkSpec, load_chunk_with, prepare
from pom_actors.store.imports import create_import

from .test_imports import HEADER, api, new_list, upload, wait_done  # noqa: F401 — `api` is a fixture

pytestmark = pytest.mark.integration
REGIONS = ("north", "south", "west", "east")


def csv_text(n: int) -> str:
    return HEADER + "".join(f"s{i},F,L,+1212555{i:04d},,{REGIONS[i % 4]}\n" for i in range(n))


def splitter(north: int, south: int, rest: int | None) -> dict:
    return {"rules": [{"when": "attr.plan = 'north'", "list_id": north},
                      {"when": "attr.plan in ('south', 'west')", "list_id": south}], "default": rest}


def test_one_file_split_into_three_lists(api, conn):
    north, south, rest = (new_list(api) for _ in range(3))
    r = upload(api, north, csv_text(2000), region="US", options=json.dumps(
        {"splitter": splitter(north, south, rest)}))
    assert r.status_code == 202, r.text
    body = wait_done(api, r.json()["id"])
    assert body["state"] == "done"
    assert (body["rows_read"], body["rows_loaded"], body["rows_rejected"], body["duplicates"]) == (2000, 2000, 0, 0)
    # flagged: the session's DNC lists (other tests') may hold some of these numbers
    flagged = dict(conn.execute("SELECT list_id, count(*) FILTER (WHERE dnc) FROM contacts WHERE list_id = ANY(%s) "
                                "GROUP BY list_id", ([north, south, rest],)).fetchall())
    assert body["targets"] == [{"list_id": north, "rows_loaded": 500, "duplicates": 0, "dnc_flagged": flagged[north]},
                               {"list_id": south, "rows_loaded": 1000, "duplicates": 0, "dnc_flagged": flagged[south]},
                               {"list_id": rest, "rows_loaded": 500, "duplicates": 0, "dnc_flagged": flagged[rest]}]
    got = dict(conn.execute("SELECT list_id, array_agg(attributes->>'plan' ORDER BY external_id) FROM contacts "
                            "WHERE list_id = ANY(%s) GROUP BY list_id", ([north, south, rest],)).fetchall())
    assert set(got[north]) == {"north"} and len(got[north]) == 500
    assert set(got[south]) == {"south", "west"} and len(got[south]) == 1000
    assert set(got[rest]) == {"east"} and len(got[rest]) == 500
    ids = conn.execute("SELECT external_id FROM contacts WHERE list_id = ANY(%s)", ([north, south, rest],)).fetchall()
    assert len(ids) == len(set(ids)) == 2000                    # every row in exactly one list


def test_without_a_default_unmatched_rows_are_rejects(api, conn):
    north, south = new_list(api), new_list(api)
    r = upload(api, north, csv_text(40), region="US", options=json.dumps(
        {"splitter": splitter(north, south, None)}))
    body = wait_done(api, r.json()["id"])
    assert (body["state"], body["rows_loaded"], body["rows_rejected"]) == ("done", 30, 10)
    assert [(t["list_id"], t["rows_loaded"]) for t in body["targets"]] == [(north, 10), (south, 20)]
    rejects = api.get(f"/api/v1/imports/{body['id']}/rejects").json()["rejects"]
    assert {(x["field"], x["reason"]) for x in rejects} == {("splitter", "no splitter rule matched")}
    assert sorted(x["line"] for x in rejects) == [i + 2 for i in range(40) if i % 4 == 3]


def test_bad_splitters_are_refused_before_anything_starts(api):
    list_id = new_list(api)
    bad = {"rules": [{"when": "attr.plan = ", "list_id": list_id}]}
    r = api.post("/api/v1/lists/%d/imports" % list_id, json={"path": "x.csv", "splitter": bad})
    assert r.status_code == 422 and "rules[0].when" in r.text, r.text
    r = upload(api, list_id, csv_text(4), region="US", splitter=json.dumps(splitter(list_id, 999_999, None)))
    assert r.status_code == 404 and "999999" in r.text, r.text


def test_a_chunk_loaded_again_merges_nothing(api, conn, tmp_path):
    north, south, rest = (new_list(api) for _ in range(3))
    path = tmp_path / "split.csv"
    path.write_text(csv_text(100))
    options = Options(region="US", splitter=splitter(north, south, rest))
    import_id = create_import(conn, north, "test", str(path), asdict(options))
    conn.execute("UPDATE import_jobs SET state = 'paused' WHERE id = %s", (import_id,))   # not the actor's
    prepared = prepare(str(path), options)
    s, e, line = prepared.chunks[0]
    spec = ChunkSpec(import_id, 0, north, prepared.path, s, e, line, prepared.encoding, prepared.delimiter,
                     [list(c) if c else None for c in prepared.columns], asdict(options))
    assert load_chunk_with(conn, spec)["rows_loaded"] == 100
    assert load_chunk_with(conn, spec) is None
    assert conn.execute("SELECT count(*) FROM contacts WHERE list_id = ANY(%s)",
                        ([north, south, rest],)).fetchone()[0] == 100
