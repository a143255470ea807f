"""schemathesis over the OpenAPI document against the running gateway (uvicorn, the session's
database and actors), with an admin token: no 5xx, no status the operation does not declare,
no response outside its schema, no content type it does not declare.

It runs schemathesis' own command line (`st run`: its examples, coverage and fuzzing phases,
positive and negative data) in a process of its own against the gateway this process serves.
Bounded: `MAX_EXAMPLES` cases per operation and phase, no shrinking; deterministic under CI
(`--generation-deterministic`), like every property test (tests/conftest.py). Half the path
parameters that name a resource take the id of one that exists (`EXISTING`: the session's, and
one of each the run makes first through the API), so that the requests reach more than the 404
of a random id.

The requests change the session's system like an operator would, so what they change is put
back after the run: every token they revoked (the run's own token between requests, so that
it goes on testing), every configuration document (a `GET`+`PUT` `…/config` route) as it
was, every job they created stopped (and the schedules of the campaigns they created removed,
the import schedules they created deleted), every contact list and contact they deleted (a list's
name and description as they were), every agent they changed or deleted (its name, skills and
groups as they were; its tokens valid again).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from psycopg.types.json import Jsonb

from pom_actors.core.lifecycle import TERMINAL
from pom_actors.core.tokens import Role
from pom_actors.store import auth as authstore

from .conftest import api_client, phone_contacts, served_gateway

MAX_EXAMPLES = 10             # per operation and phase: 6,100 requests, ~80 s here (25: 7,600, ~115 s)
EXISTING = {                     # path parameter: the query of existing values (newest first)
    "job_id": "SELECT id FROM jobs ORDER BY id DESC LIMIT 20",
    "list_id": "SELECT id FROM contact_lists ORDER BY id DESC LIMIT 20",
    "campaign_id": "SELECT id FROM campaigns ORDER BY id DESC LIMIT 20",
    "filter_id": "SELECT id FROM filter_templates ORDER BY id DESC LIMIT 20",
    "import_id": "SELECT id FROM import_jobs ORDER BY id DESC LIMIT 20",
    "login": "SELECT login FROM agents ORDER BY id DESC LIMIT 20",
}
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"


@pytest.fixture(scope="module")
def gateway(pom):
    with served_gateway(pom.settings) as host:
        yield f"http://{host}"


@pytest.fixture(scope="module")
def restored(pom, gateway):
    """Puts back what the run changed (see the module's docstring)."""
    with pom.connect() as conn, pom.connect() as guard, api_client(pom.settings, None) as http:
        started = conn.execute("SELECT now()").fetchone()[0]
        last_job = conn.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()[0]
        last_campaign = conn.execute("SELECT coalesce(max(id), 0) FROM campaigns").fetchone()[0]
        last_import_schedule = conn.execute("SELECT coalesce(max(id), 0) FROM import_schedules").fetchone()[0]
        rules = conn.execute("SELECT id, campaign_id, kind, enabled, params FROM rules").fetchall()
        campaigns = conn.execute("SELECT id, description, priority, enabled, finish, schedule FROM campaigns").fetchall()
        agents = conn.execute(AGENTS_SQL).fetchall()
        conn.execute("CREATE TEMP TABLE kept_lists AS TABLE contact_lists")
        conn.execute("CREATE TEMP TABLE kept_contacts AS TABLE contacts")
        token_id, token = (lambda made: (made[0]["id"], made[1]))(
            authstore.create_token(conn, "schemathesis", Role.ADMIN))
        http.headers["Authorization"] = f"Bearer {token}"
        paths = http.get("/openapi.json").json()["paths"]
        configs = {path: http.get(path).json() for path, item in paths.items()
                   if path.endswith("/config") and {"get", "put"} <= set(item)}
        stop = threading.Event()

        def keep_token() -> None:                  # revoked by a generated DELETE: valid again
            while not stop.wait(0.05):
                guard.execute("UPDATE api_tokens SET revoked_at = NULL WHERE id = %s", (token_id,))

        keeper = threading.Thread(target=keep_token, daemon=True)
        keeper.start()
        seed(http)
        try:
            yield token
        finally:
            stop.set()
            keeper.join()
            conn.execute("UPDATE api_tokens SET revoked_at = NULL WHERE revoked_at >= %s", (started,))
            for path, document in configs.items():
                assert http.put(path, json=document).status_code == 200, path
            put_back_definitions(conn, rules, campaigns)
            # what the run created goes quiet: no schedule of its campaigns or imports left
            # starting jobs and imports for the rest of the session
            conn.execute("UPDATE campaigns SET schedule = NULL WHERE id > %s", (last_campaign,))
            conn.execute("DELETE FROM import_schedules WHERE id > %s", (last_import_schedule,))
            put_back_lists(conn)
            put_back_agents(conn, http, agents)
            for (job_id,) in conn.execute("SELECT id FROM jobs WHERE id > %s AND NOT state = ANY(%s)",
                                          (last_job, [str(s) for s in TERMINAL])).fetchall():
                http.post(f"/api/v1/jobs/{job_id}/stop")


def put_back_definitions(conn, rules: list[tuple], campaigns: list[tuple]) -> None:
    """The rules as they were (the Rule Editor's routes may have replaced or deleted the system
    rules) and the campaigns still there as they were (no schedule left starting jobs)."""
    with conn.transaction():
        conn.execute("DELETE FROM rules")
        for rule_id, campaign_id, kind, enabled, params in rules:
            conn.execute("INSERT INTO rules (id, campaign_id, kind, enabled, params) SELECT %s, %s, %s, %s, %s "
                         "WHERE %s::int IS NULL OR EXISTS (SELECT 1 FROM campaigns WHERE id = %s)",
                         (rule_id, campaign_id, kind, enabled, Jsonb(params), campaign_id, campaign_id))
        for campaign_id, description, priority, enabled, finish, schedule in campaigns:
            conn.execute("UPDATE campaigns SET description = %s, priority = %s, enabled = %s, finish = %s, "
                         "schedule = %s WHERE id = %s", (description, priority, enabled, Jsonb(finish),
                                                         None if schedule is None else Jsonb(schedule), campaign_id))


AGENTS_SQL = "SELECT login, name, skills, groups FROM agents WHERE state <> 'deleted' ORDER BY id"


def put_back_agents(conn, http, agents: list[tuple]) -> None:
    """The agents a generated PATCH changed or DELETE removed, as they were: created again
    through the API (so that the Agent Manager has them too)."""
    now = {login: rest for login, *rest in conn.execute(AGENTS_SQL).fetchall()}
    for login, name, skills, groups in agents:
        if now.get(login) != [name, skills, groups]:
            r = http.post("/api/v1/agents", json={"login": login, "name": name, "skills": skills, "groups": groups})
            assert r.status_code == 201, r.text


def put_back_lists(conn) -> None:
    """The contact lists and contacts the generated DELETEs removed, and the lists' names and
    descriptions as they were (from the copies `restored` took before the run)."""
    with conn.transaction():
        conn.execute("INSERT INTO contact_lists SELECT * FROM kept_lists ON CONFLICT (id) DO NOTHING")
        conn.execute("UPDATE contact_lists l SET name = k.name, description = k.description FROM kept_lists k "
                     "WHERE l.id = k.id AND (l.name, l.description) IS DISTINCT FROM (k.name, k.description)")
        conn.execute("INSERT INTO contacts SELECT * FROM kept_contacts ON CONFLICT DO NOTHING")


def seed(http) -> None:
    """One resource of each kind the path parameters of `EXISTING` name (a job left queued)."""
    def made(r):
        assert r.status_code in (200, 201), r.text
        return r.json()

    name = f"conformance-{time.monotonic_ns()}"
    lst = made(http.post("/api/v1/lists", json={"name": name, "attributes": ["segment"]}))
    made(http.post(f"/api/v1/lists/{lst['id']}/contacts", json=phone_contacts(3)))
    strategy = made(http.post("/api/v1/strategies", json={"name": name, "initial": "c", "handlers": {
        "c": {"type": "call", "message": "x", "results": {"default": "done"}}}}))
    made(http.post("/api/v1/campaigns", json={"name": name, "strategy_id": strategy["id"], "list_id": lst["id"]}))
    made(http.post("/api/v1/jobs", json={"campaign": name, "start": False}))
    made(http.post("/api/v1/filters", json={"name": name, "expression": "attr.segment = 'gold'"}))
    made(http.post("/api/v1/agents", json={"login": name, "skills": []}))


def config_file(conn, path) -> str:
    """A schemathesis.toml binding each parameter of `EXISTING` to its existing values half of
    the time."""
    lines, bindings = [], []
    for name, query in EXISTING.items():
        values = [row[0] for row in conn.execute(query).fetchall()]
        if values:
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
            bindings.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    path.write_text("\n".join(lines + ["[parameters]"] + bindings) + "\n")
    return str(path)


def test_the_gateway_conforms_to_its_openapi_document(pom, gateway, restored, tmp_path):
    with pom.connect() as conn:
        config = config_file(conn, tmp_path / "schemathesis.toml")
    command = [os.path.join(os.path.dirname(sys.executable), "st"), "--config-file", config,
               "run", f"{gateway}/openapi.json",
               "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--phases", "examples,coverage,fuzzing",
               "--header", f"Authorization: Bearer {restored}", "--request-timeout", "70",
               "--no-shrink", "--workers", "1", "--no-color",
               "--continue-on-failure", "--suppress-health-check", "all"]
    # deterministic under CI, which implies no example database; else no database either
    command += ["--generation-deterministic"] if os.environ.get("CI") else ["--generation-database", "none"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
