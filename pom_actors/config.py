"""Settings of a POM server, read from `POM_*` environment variables (and a `.env` file).

Every actor receives the same `Settings` object from the process that started it, so a
cluster runs on one configuration; README.md's configuration table lists every variable.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


def _bool(text: str) -> bool:
    return text.strip().lower() not in ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None      # POM_DATABASE_URL; None: embedded PostgreSQL in data_dir
    data_dir: str = ".pom-data"          # POM_DATA_DIR
    ray_address: str | None = None       # POM_RAY_ADDRESS; None: a local Ray instance
    http_host: str = "127.0.0.1"         # POM_HTTP_HOST
    http_port: int = 8080                # POM_HTTP_PORT
    demo: bool = True                    # POM_DEMO
    demo_contacts: int = 10_000          # POM_DEMO_CONTACTS
    clock_scale: float = 1.0             # POM_CLOCK_SCALE: business seconds per real second
    clock_start: str | None = None       # POM_CLOCK_START: ISO time business time starts at (scaled clock)
    shards_per_job: int = 8              # POM_SHARDS_PER_JOB
    managers_per_job: int = 0            # POM_MANAGERS_PER_JOB; 0: one per POM server
    default_zone: str = "default"        # POM_DEFAULT_ZONE: the zone of campaigns given none and
                                         # of the server `pom run` starts Ray on
    zone_drain_s: float = 10.0           # POM_ZONE_DRAIN_S: a job leaving a zone waits this long at
                                         # most for its attempts in flight before its managers go
    batch_size: int = 1000               # POM_BATCH_SIZE: work items claimed per manager cycle
    lease_ttl_s: float = 6.0             # POM_LEASE_TTL_S: a manager silent this long loses its shards
    ping_timeout_s: float = 2.0          # POM_PING_TIMEOUT_S: a manager that does not answer the
                                         # director's ping within this loses its shards at once
    tick_s: float = 0.5                  # POM_TICK_S: director cycle
    voice_instant: bool = False          # POM_VOICE_INSTANT: simulator answers at once (benchmarks)
    voice_seed: int = 0                  # POM_VOICE_SEED
    # POM_VOICE_BRIDGE_WAIT_S: business seconds an answered call of an agent-based job waits for an
    # agent before the simulator abandons it (unset: the profile's, 2 s as the nuisance rule says)
    voice_bridge_wait_s: float | None = None
    # POM_NAIL_GRACE_S: business seconds an agent's nailed session is kept after it leaves its
    # job, for its next job to reuse (core/agents/nailing.py)
    nail_grace_s: float = 60.0
    # POM_AGENT_FEED_PORT: the Agent Manager's port for the gateways' change feed (0: any free
    # one), on its node's address (pom_actors/feed_stream.py)
    agent_feed_port: int = 0
    smtp_host: str = "127.0.0.1"         # POM_SMTP_HOST
    smtp_port: int = 25                  # POM_SMTP_PORT
    smtp_user: str | None = None         # POM_SMTP_USER
    smtp_password: str | None = None     # POM_SMTP_PASSWORD
    smtp_starttls: bool = False          # POM_SMTP_STARTTLS
    sms_url: str | None = None           # POM_SMS_URL
    sms_token: str | None = None         # POM_SMS_TOKEN
    outbound_allow: str = ""             # POM_OUTBOUND_ALLOW: addresses/CIDRs a webhook may reach besides
                                         # public ones (core/outbound.py), e.g. "10.0.0.0/8,127.0.0.1"
    kafka: bool = True                   # POM_KAFKA: off disables the event relay
    kafka_bootstrap: str | None = None   # POM_KAFKA_BOOTSTRAP; None: the embedded broker on loopback
    max_body_bytes: int = 10 * 1024 * 1024  # POM_MAX_BODY_BYTES: larger request bodies get 413
    max_import_bytes: int = 2 * 1024**3  # POM_MAX_IMPORT_BYTES: larger import files (uploads) get 413
    import_dir: str | None = None        # POM_IMPORT_DIR: server-side files may be imported from here only
    log_level: str = "INFO"              # POM_LOG_LEVEL
    clock: dict = field(default_factory=dict)  # set by the runtime: the spec of the shared clock

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, dotenv: bool = True) -> "Settings":
        """Build from the environment; a `.env` in the working directory fills unset variables."""
        if env is None:
            if dotenv and Path(".env").exists():
                from dotenv import load_dotenv
                load_dotenv(".env", override=False)
            env = dict(os.environ)
        values = {}
        for f in fields(cls):
            key = "POM_" + f.name.upper()
            if f.name == "clock" or key not in env:
                continue
            raw = env[key]
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            try:
                if kind.startswith("bool"):
                    values[f.name] = _bool(raw)
                elif kind.startswith("int"):
                    values[f.name] = int(raw)
                elif kind.startswith("float"):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw or None if "None" in kind else raw
            except ValueError:
                raise ValueError(f"{key}={raw!r} is not a valid {kind.split(' ')[0]}") from None
        return cls(**values)

    def replace(self, **changes) -> "Settings":
        return Settings(**{**asdict(self), **changes})
