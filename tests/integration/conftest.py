"""One Ray instance, one embedded PostgreSQL and one POM system for the whole session.

Business time runs 600 times faster than real time from a Wednesday 15:00 UTC, when the
contact windows of the test zones (US east to west, UK, Germany) are open: a 10-minute retry
takes a second. Real local SMTP and HTTP servers stand in for the mail and SMS providers.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit

import pytest
import ray

from pom_actors.config import Settings
from pom_actors.core.lifecycle import TERMINAL, JobState
from pom_actors.names import gateways
from pom_actors.runtime import Runtime
from pom_actors.core.tokens import Role
from pom_actors.store import auth as authstore, catalog, jobs as jobstore

from .ports import free_port

CLOCK_START = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
SCALE = 600.0


class Sink(ThreadingHTTPServer):
    """A local HTTP server recording every request: the SMS provider and webhook target."""

    def __init__(self):
        self.requests: list[dict] = []
        self.webhook_code = "delivered"
        super().__init__(("127.0.0.1", 0), _SinkHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _SinkHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        import json
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append({"path": self.path, "body": body,
                                     "auth": self.headers.get("Authorization")})
        reply = {"code": self.server.webhook_code} if self.path.startswith("/hook") else {"id": "m1"}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def sink() -> Iterator[Sink]:
    server = Sink()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="session")
def smtp():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self):
            super().__init__()
            self.messages = []

        def handle_message(self, message):
            self.messages.append(message)

    inbox = Inbox()
    inbox.port = free_port()                       # aiosmtpd needs a concrete port
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


@pytest.fixture(scope="session")
def pom(sink, smtp) -> Iterator[Runtime]:
    data_dir = tempfile.mkdtemp(prefix="pom-test-")
    os.chmod(data_dir, 0o755)                       # the embedded server runs as its own user
    settings = Settings(data_dir=data_dir, demo=False, clock_scale=SCALE,
                        clock_start=CLOCK_START.isoformat(), shards_per_job=4, managers_per_job=2,
                        batch_size=500, lease_ttl_s=3.0, tick_s=0.2, smtp_port=smtp.port,
                        sms_url=sink.url + "/sms", sms_token="secret-token",
                        outbound_allow="127.0.0.0/8",       # the webhook sink is on loopback
                        # an answered call waits 300 business s (0.5 real s) for an agent: the rule's 2 s
                        # are 3 real ms at 600x, less than one manager cycle, and a test on a machine that
                        # stalls for a tenth of a second must not see every call abandoned (test_bridging.py)
                        voice_bridge_wait_s=300.0,
                        # a detached agent's nailed session is kept 6000 business s (10 real s) for
                        # its next job (tests/integration/test_nailing.py)
                        nail_grace_s=6000.0)
    rt = Runtime.start(settings)
    yield rt
    rt.stop(drain_s=2)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def role_tokens(pom) -> dict[Role, str]:
    """One API token per role, created in the database for the session (store/auth.py)."""
    with pom.connect() as c:
        return {role: authstore.create_token(c, f"tests {role}", role,
                                             _test_agent(c) if role == Role.AGENT else None)[1]
                for role in Role}


def _test_agent(c) -> int:
    return c.execute("INSERT INTO agents (login, name) VALUES ('tests-token-agent', 'tests') "
                     "ON CONFLICT (login) DO UPDATE SET name = EXCLUDED.name RETURNING id").fetchone()[0]


@pytest.fixture(scope="session")
def admin_token(role_tokens) -> str:
    return role_tokens[Role.ADMIN]


def api_client(settings: Settings, token: str | None):
    """A TestClient of a new gateway app that sends `token` (None: no token) with every request;
    use it as a context manager (`with api_client(pom.settings, admin_token) as http:`)."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"} if token else None)


@pytest.fixture(scope="module")
def http(pom, admin_token):
    """The gateway in-process with an admin token (a module may ask for another role's)."""
    with api_client(pom.settings, admin_token) as client:
        yield client


@pytest.fixture
def conn(pom):
    with pom.connect() as c:
        yield c


class Campaigns:
    """Makes campaigns of test strategies over generated contacts, runs and inspects jobs."""

    def __init__(self, rt: Runtime, conn):
        self.rt, self.conn, self.n = rt, conn, 0

    def make(self, strategy: dict, contacts: list[dict], **options) -> int:
        self.n += 1
        name = f"{strategy['name']}-{self.n}-{time.monotonic_ns()}"
        with self.conn.transaction():
            list_id = catalog.create_list(self.conn, name, attributes=["segment"])
            catalog.add_contacts(self.conn, list_id, contacts)
            sid, _ = catalog.save_strategy(self.conn, {**strategy, "name": name})
            return catalog.create_campaign(self.conn, name, sid, list_id, **options)

    def start(self, campaign_id: int) -> int:
        return ray.get(self.rt.director.create_job.remote(campaign_id))

    def wait(self, job_id: int, states=TERMINAL, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = jobstore.job(self.conn, job_id)
            if JobState(job["state"]) in states:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout}s: "
                             f"{jobstore.state_counts(self.conn, [job_id])}")

    def items(self, job_id: int) -> dict[str, int]:
        return jobstore.state_counts(self.conn, [job_id])[job_id]

    def settled(self, job_id: int, timeout: float = 30) -> dict[str, int]:
        """Waits until no item of the job is ready or in flight (every attempt due now has
        settled; retries may be scheduled); its item counts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = self.items(job_id)
            if not items.get("ready") and not items.get("in_flight"):
                return items
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} has items ready or in flight after {timeout}s: {items}")

    def command(self, job_id: int, event: str) -> str:
        return ray.get(self.rt.director.command.remote(job_id, event))


@pytest.fixture
def campaigns(pom, conn) -> Campaigns:
    return Campaigns(pom, conn)


def gateway_orders() -> list[str]:
    """Every attempt id any gateway ever accepted (duplicates across gateways included)."""
    return [aid for handle in gateways(refresh=True).values() for aid in ray.get(handle.order_ids.remote())]


_numbers = itertools.count(2_000_000)


def phone_contacts(n: int, **extra) -> list[dict]:
    """`n` contacts with fresh valid New York numbers (never reused in the session, so the
    cross-campaign nuisance rule does not couple tests) and an e-mail address."""
    out = []
    for i in range(n):
        k = next(_numbers)
        out.append({"external_id": f"c{k}", "first_name": f"F{k}", "phone1": f"+1212{k:07d}",
                    "email": f"c{k}@example.com", "attributes": {"segment": "gold"}, **extra})
    return out


@contextmanager
def scratch_database(settings: Settings, name: str) -> Iterator[str]:
    """An empty database `name` on the session's server (dropped first if left over, and
    after): its URL, for migrations and first starts run from scratch."""
    import psycopg

    from pom_actors.store.database import libpq_url

    def admin(statement: str) -> None:
        with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as c:
            c.execute(statement)

    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(settings.database_url)._replace(path=f"/{name}"))
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def served_gateway(settings: Settings) -> Iterator[str]:
    """The gateway app served by uvicorn on a free loopback port, in a thread (for tests that
    need a real HTTP server or WebSocket: Prometheus, agent desktops, schemathesis); yields
    `host:port`."""
    import uvicorn

    from api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", ws="websockets"))
    thread = threading.Thread(target=server.run, name="test-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the gateway did not start"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
