"""The dashboards against a real Prometheus (Debian package `prometheus`, installed by .ci/run):
it scrapes a running gateway (uvicorn on a loopback port, a bearer token from a file) every
second, while an agent-based job dials, agents are logged in and take calls through the
Agent Manager, and an import loads; then every expression of every panel (and every template
variable's query) of every dashboard in dashboards/*.json answers with data.

Grafana's variables are replaced as Grafana would: `$__rate_interval` by 10s (four scrape
intervals and more), `$job` by `.*` (All)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import ray

from pom_actors import names
from pom_actors.core.agents.state import IllegalAgentTransition
from pom_actors.core.tokens import Role
from pom_actors.store import catalog

from .conftest import phone_contacts, served_gateway
from .ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "dashboards").glob("*.json"))
RATE_INTERVAL = "10s"

STRATEGY = {"name": "prom-e2e", "initial": "call",
            "handlers": {"call": {
                "type": "call", "addresses": ["phone1"], "caller_id": "+12125550100", "ring_timeout": 20,
                "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}, "attempts_per_second": 6,
                           "max_concurrent": 6},
                # the job's own answered calls are bridged onto these agents too; nobody disposes
                # them, so a short wrap-up limit gives the agents back
                "agents": {"skills": ["e2e"], "max": 3, "wrap_up": "60s"},
                "results": {"default": "done"}}}}
IMPORT = ("external_id,first_name,last_name,phone1,email\n"
          + "".join(f"{i},F{i},L{i},+1212777{i:04d},\n" for i in range(1, 200))
          + "7,Dup,D,+12127770007,\n" + "x,Bad,B,+1,not-a-mail\n")


@pytest.fixture(scope="module")
def gateway(pom, tmp_path_factory):
    with served_gateway(pom.settings.replace(import_dir=str(tmp_path_factory.mktemp("inbox")))) as address:
        yield address


@pytest.fixture(scope="module")
def prometheus(gateway, role_tokens, tmp_path_factory):
    """Prometheus scraping the gateway every second, with an integration token from a file."""
    if not os.path.exists(PROMETHEUS):
        pytest.fail(f"{PROMETHEUS} is missing: apt-get install prometheus (.ci/run does)")
    home = tmp_path_factory.mktemp("prometheus")
    token = home / "token"
    token.write_text(role_tokens[Role.INTEGRATION])
    token.chmod(0o600)
    config = home / "prometheus.yml"
    config.write_text(json.dumps({            # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "pom-gateway", "metrics_path": "/metrics", "scrape_interval": "1s",
                            "scrape_timeout": "1s",
                            "authorization": {"type": "Bearer", "credentials_file": str(token)},
                            "static_configs": [{"targets": [gateway]}]}]}))
    port = free_port()
    log = open(home / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (home / "prometheus.log").read_text()[-3000:]
            try:
                if api.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "prometheus did not get ready"
            time.sleep(0.2)
        api.log = home / "prometheus.log"
        yield api
    finally:
        api.close()
        proc.terminate()                       # by its pid: the process this fixture started
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def query(api: httpx.Client, expr: str) -> list:
    r = api.get("/api/v1/query", params={"query": expr})
    assert r.status_code == 200, (expr, r.text)
    body = r.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def expressions(board: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable, Grafana's variables
    replaced as Grafana would (`label_values(m, l)` queries `m`)."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((f"{board['uid']} panel {p['title']!r} {t['refId']}", t["expr"]))
            walk(p.get("panels", []))

    walk(board["panels"])
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)
            out.append((f"{board['uid']} variable {var['name']}", m.group(1) if m else q))
    return [(where, e.replace("$__rate_interval", RATE_INTERVAL).replace("$job", ".*")) for where, e in out]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_every_panel_of_every_dashboard_answers_with_data(pom, campaigns, gateway, prometheus, conn, admin_token):
    assert {p.name for p in DASHBOARDS} >= {"campaigns.json", "agents.json", "system.json", "load.json"}
    http = httpx.Client(base_url=f"http://{gateway}", timeout=30, headers={"Authorization": f"Bearer {admin_token}"})
    am = names.actor(names.AGENT_MANAGER)
    tag = time.monotonic_ns() % 10**9
    job_id, agent_ids = None, []
    try:
        # Prometheus scrapes the gateway (the first scrape counts the ledger whole)
        wait_for(lambda: [r for r in query(prometheus, 'up{job="pom-gateway"} == 1')], 30,
                 f"the gateway is not scraped: {prometheus.get('/api/v1/targets').text[:2000]}")

        # agents logged in and ready; an agent-based job that dials (three contacts on the DNC list)
        for i in range(3):
            r = http.post("/api/v1/agents", json={"login": f"e2e-{tag}-{i}", "skills": ["e2e"]})
            assert r.status_code == 201, r.text
            agent_ids.append(r.json()["id"])
            ray.get(am.command.remote(agent_ids[-1], "login"))
            ray.get(am.command.remote(agent_ids[-1], "ready"))
        contacts = phone_contacts(600)
        catalog.add_dnc(conn, addresses=[contacts[i]["phone1"] for i in (2, 5, 11)])
        job_id = campaigns.start(campaigns.make(STRATEGY, contacts))
        wait_for(lambda: job_id in ray.get(am.jobs.remote()), 30, "the Agent Manager was not told the job")
        wait_for(lambda: len(ray.get(am.agents.remote(job_id))) == 3, 30, "the agents were not attached")

        # an import, loading while Prometheus scrapes
        r = http.post("/api/v1/lists", json={"name": f"e2e-import-{tag}"})
        assert r.status_code == 201, r.text
        r = http.post(f"/api/v1/lists/{r.json()['id']}/imports",
                      files={"file": ("contacts.csv", IMPORT.encode(), "text/csv")}, data={"region": "US"})
        assert r.status_code == 202, r.text

        # answered calls put through to the job's agents: reserve, connect, hang up, dispose
        disposed, n, deadline = 0, 0, time.monotonic() + 60
        while disposed < 6:
            assert time.monotonic() < deadline, f"{disposed} of 6 calls disposed in 60 s"
            call, n = f"e2e-{tag}-{n}", n + 1
            agent = wait_for(lambda: ray.get(am.reserve.remote(job_id, [call]))[call], 30,
                             "no agent of the job came free")    # the job's own calls hold them at times
            ray.get(am.connect.remote(call))
            ray.get(am.hangup.remote(call))
            try:
                ray.get(am.command.remote(agent, "dispose", "answer_human"))
                disposed += 1
            except IllegalAgentTransition:     # its wrap-up limit (100 real ms) ended it first
                pass
            time.sleep(0.3)
        time.sleep(3)                          # a few scrapes after the last of them

        # every expression of every panel has data
        missing: dict[str, str] = {}
        todo = [(where, expr) for path in DASHBOARDS for where, expr in expressions(json.loads(path.read_text()))]
        assert len(todo) > 60
        deadline = time.monotonic() + 45
        while todo:
            todo = [(where, expr) for where, expr in todo if not query(prometheus, expr)]
            missing = dict(todo)
            if not todo or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not missing, json.dumps(missing, indent=1)

        # the histograms are real: cumulative buckets with a count and a sum
        count = query(prometheus, "sum(pom_agent_connect_latency_seconds_count)")
        assert float(count[0]["value"][1]) >= 6
        inf = query(prometheus, 'sum(pom_manager_dispatch_latency_seconds_bucket{le="+Inf"}) '
                                '- sum(pom_manager_dispatch_latency_seconds_count)')
        assert float(inf[0]["value"][1]) == 0
    finally:
        if job_id is not None:
            campaigns.command(job_id, "stop")
        for agent in agent_ids:
            try:
                ray.get(am.command.remote(agent, "logout"))
            except Exception:                  # on a call or wrapping up: forced out when it ends
                ray.get(am.command.remote(agent, "force_logoff", "e2e test"))
        http.close()
