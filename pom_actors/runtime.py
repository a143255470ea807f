"""Bring a POM server up and down: database, clock, Ray, and the cluster-wide actors.

Used by `pom run` (the main job), the tests and the benchmarks, so that all three start the
system the same way. Managers and gateways are the director's business; this starts only the
director and the rule engine, both named and detached so they outlive the starting process
when it only joins a cluster.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg
import ray
from ray._private import ray_constants
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .config import Settings
from .core.clock import ScaledClock, SystemClock
from .agent_manager import AGENT_MANAGER, AgentManager
from .director import CampaignDirector
from .event_relay import EventRelay
from .kafka_broker import EmbeddedBroker
from .names import DIRECTOR, EVENT_RELAY, NAMESPACE, RULE_ENGINE, server_resources
from .importer import start_importer
from .rule_engine import RuleEngine
from .store.database import EmbeddedPostgres, connect, migrate
from .store.work import latest_business_time
from .supervise import SessionWatchdog, ray_started_here, reap_sessions

log = logging.getLogger(__name__)
RAY_CLUSTERS_ENV = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR


@dataclass
class Runtime:
    settings: Settings
    embedded: EmbeddedPostgres | None = None
    owns_ray: bool = False
    director: "ray.actor.ActorHandle | None" = field(default=None, repr=False)
    broker: EmbeddedBroker | None = None              # the loopback Kafka, when no bootstrap is set
    ray_sessions: set[int] = field(default_factory=set)   # the Ray processes this process started
    watchdog: SessionWatchdog | None = field(default=None, repr=False)

    @classmethod
    def start(cls, settings: Settings, *, ray_init: bool = True) -> "Runtime":
        """Database (embedded unless a URL is set) with migrations, then Ray and the actors.
        If any step fails (or SystemExit/KeyboardInterrupt arrives), what was started is stopped."""
        rt = cls(settings)
        try:
            rt._start(ray_init)
        except BaseException:
            rt._shutdown()
            raise
        return rt

    def _start(self, ray_init: bool) -> None:
        settings = self.settings
        url = settings.database_url
        if not url:
            self.embedded = EmbeddedPostgres(settings.data_dir)
            url = self.embedded.url
        migrate(url)
        settings = self.settings = settings.replace(database_url=url, clock=_clock_spec(settings, url))
        if ray_init and not ray.is_initialized():
            local = settings.ray_address is None
            # Ray lowers its workers' priority (nice 15) by default; here they are the server.
            os.environ.setdefault("RAY_worker_niceness", "0")
            if local:
                _loopback_only()
            with ray_started_here():
                # "local": a Ray of our own, even if a `ray start` cluster runs on this machine.
                ray.init(address=settings.ray_address or "local", namespace=NAMESPACE,
                         include_dashboard=False,
                         resources=server_resources(settings.default_zone) if local else None,
                         log_to_driver=False, logging_level=logging.WARNING)
            self.owns_ray = local
            if local:
                self.ray_sessions = _ray_processes()
                self.watchdog = SessionWatchdog(self.ray_sessions)
        if settings.kafka and not settings.kafka_bootstrap:
            self.broker = EmbeddedBroker()
            if self.watchdog is not None:     # a SIGKILL of this process must not leave it behind
                self.watchdog.watch(self.broker.process.pid)
            settings = self.settings = settings.replace(kafka_bootstrap=self.broker.bootstrap)
        if settings.kafka:
            _singleton(EventRelay, EVENT_RELAY).remote(settings)
        _singleton(RuleEngine, RULE_ENGINE).remote(settings)
        _singleton(AgentManager, AGENT_MANAGER).remote(settings)
        start_importer(settings)
        self.director = _singleton(CampaignDirector, DIRECTOR).remote(settings)
        ray.get(self.director.ping.remote())
        ray.get(self.director.serve.remote())

    def connect(self) -> psycopg.Connection:
        return connect(self.settings.database_url, autocommit=True)

    def stop(self, drain_s: float = 15.0) -> dict:
        """Drain in-flight attempts, then end what this process started: its Ray instance (every
        process of it) and its embedded database. Returns what each manager still had out
        (-1: it did not answer)."""
        left = {}
        began = time.monotonic()
        if self.director is not None and ray.is_initialized():
            try:
                left = ray.get(self.director.drain.remote(drain_s), timeout=drain_s + 10)
            except Exception as exc:  # the system is going down either way; say why
                log.warning("drain incomplete: %s", exc)
        log.info("drain: %.1f s", time.monotonic() - began)
        self._shutdown()
        return left

    def _shutdown(self) -> None:
        began = time.monotonic()
        if self.owns_ray:
            if ray.is_initialized():
                ray.shutdown()
            self.owns_ray = False
        if self.ray_sessions:
            signalled = reap_sessions(self.ray_sessions, grace_s=1.0)   # Ray's agents linger
            log.info("Ray stopped in %.1f s (%d of its processes ended by a signal)",
                     time.monotonic() - began, len(signalled))
            self.ray_sessions = set()
        if self.watchdog is not None:
            self.watchdog.dismiss()
            self.watchdog = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.embedded is not None:
            self.embedded.stop()


def _singleton(actor_class, name: str):
    """A cluster-wide actor (named, detached), placed on the server that starts the system —
    the primary, which holds Ray's control store, so losing another server does not take the
    director or the rule engine with it; `soft`: Ray may restart it elsewhere if need be."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return actor_class.options(name=name, lifetime="detached", get_if_exists=True, scheduling_strategy=here)


def _loopback_only() -> None:
    """A Ray of one server is nobody else's business: Ray takes loopback as its node address
    when it is told it may not form a cluster, and then its control store, raylet, workers,
    agents and metrics ports listen on 127.0.0.1 only (else on every interface). Ray reads the
    switch when it is imported, so the processes it starts get it from the environment and this
    one from the constant (tests/integration/test_lifecycle.py checks the ports). Servers that
    form a cluster start Ray with `pom cluster` instead, which listens for the others."""
    os.environ.setdefault(RAY_CLUSTERS_ENV, "0")
    ray_constants.ENABLE_RAY_CLUSTER = os.environ[RAY_CLUSTERS_ENV] not in ("0", "false", "False")


def _ray_processes() -> set[int]:
    """Pids of the processes `ray.init` started here; each leads a session of its own
    (`ray_started_here`), which holds it and what it forks (the raylet's workers and agents)."""
    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return set()
    return {info.process.pid for infos in node.all_processes.values() for info in infos
            if info.process is not None}


def _clock_spec(settings: Settings, url: str) -> dict:
    """System time, or scaled time that never runs behind what the database has already seen
    (so a restarted simulation does not find its retries in a far future)."""
    if settings.clock_scale == 1.0 and not settings.clock_start:
        return SystemClock().spec()
    with connect(url) as conn:
        seen = latest_business_time(conn)
    start = datetime.fromisoformat(settings.clock_start) if settings.clock_start else datetime.now(timezone.utc)
    start = max(start, seen or start)
    return ScaledClock.starting(start, settings.clock_scale).spec()
