"""SQLModel tables: the system of record (principle 1).

Actors keep only caches and in-flight work; everything here survives any actor. Business
timestamps (attempt times, next_at) are written from the injected clock; lease expiry uses
the database's own `now()`. Hot-path statements on these tables live in `store/work.py`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import (BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True, default_now: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable,
                  server_default=text("now()") if default_now else None)


def _d(value: Any, **kwargs) -> Any:
    """A field whose default is also the column's server default (raw SQL inserts rely on it)."""
    server = str(value).lower() if isinstance(value, bool) else str(value)
    return Field(default=value, sa_column_kwargs={"server_default": server}, **kwargs)


def _json(default: str = "'{}'::jsonb") -> Column:
    return Column(JSONB, nullable=False, server_default=text(default))


class ContactList(SQLModel, table=True):
    __tablename__ = "contact_lists"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    description: str = _d("")
    attributes: list[str] = Field(default_factory=list, sa_column=_json("'[]'::jsonb"))
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("list_id", "external_id"),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    list_id: int = Field(foreign_key="contact_lists.id")    # indexed by the unique (list_id, external_id)
    external_id: str
    first_name: str = _d("")
    last_name: str = _d("")
    phone1: Optional[str] = None          # E.164
    phone2: Optional[str] = None          # E.164
    email: Optional[str] = None
    phone1_type: Optional[str] = None     # the number's line type (core.imports.phones.TYPE_NAMES)
    phone2_type: Optional[str] = None
    dnc: bool = _d(False)                 # an address was on a DNC list when imported (flagged, kept)
    timezones: list[str] = Field(default_factory=list,
                                 sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class DncList(SQLModel, table=True):
    """A named DNC list: it applies to every campaign (`all_campaigns`) or to the campaigns it
    is attached to (`campaign_dnc_lists`). List 1, 'system', applies to every campaign and
    takes the entries written without a list."""
    __tablename__ = "dnc_lists"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    description: str = _d("")
    all_campaigns: bool = _d(False)
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class CampaignDncList(SQLModel, table=True):
    """A DNC list checked before every attempt of a campaign (several per campaign)."""
    __tablename__ = "campaign_dnc_lists"
    campaign_id: int = Field(sa_column=Column(Integer, ForeignKey("campaigns.id", ondelete="CASCADE"),
                                              primary_key=True))
    dnc_list_id: int = Field(sa_column=Column(Integer, ForeignKey("dnc_lists.id", ondelete="CASCADE"),
                                              primary_key=True))
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class DncEntry(SQLModel, table=True):
    """A do-not-contact entry of a DNC list: an address (phone in E.164 or e-mail) or a whole
    contact, once per list. `source`: manual, or `import:<id>` of the import that last carried it."""
    __tablename__ = "dnc_entries"
    __table_args__ = (UniqueConstraint("list_id", "address"), UniqueConstraint("list_id", "contact_id"))
    id: Optional[int] = Field(default=None, primary_key=True)
    list_id: int = Field(default=1, sa_column=Column(Integer, ForeignKey("dnc_lists.id", ondelete="CASCADE"),
                                                     nullable=False, server_default="1"))
    address: Optional[str] = Field(default=None, index=True)
    contact_id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, index=True))
    source: str = _d("manual")
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class CompletionCodeRow(SQLModel, table=True):
    """System codes (campaign_id NULL) and each campaign's custom codes, with their flags."""
    __tablename__ = "completion_codes"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: Optional[int] = Field(default=None, foreign_key="campaigns.id")
    name: str
    final: bool = _d(False)
    contact_uncallable: bool = _d(False)
    address_uncallable: bool = _d(False)
    human_contact: bool = _d(False)
    counts_as_abandon: bool = _d(False)
    enabled: bool = _d(True)


class StrategyRow(SQLModel, table=True):
    """A validated strategy document; a new upload of a name is a new version, never an edit."""
    __tablename__ = "strategies"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str
    version: int = _d(1)
    document: dict[str, Any] = Field(sa_column=_json())
    source: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class FilterTemplate(SQLModel, table=True):
    """A named filter expression (core.filters), checked when saved; campaigns refer to it."""
    __tablename__ = "filter_templates"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    expression: str = Field(sa_column=Column(Text, nullable=False))
    description: str = _d("")
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class AgentScript(SQLModel, table=True):
    """An agent script (core/scripts.py): a text template over the contact's attributes or a
    URL template, named by strategies' handlers (`script: {name: ...}`)."""
    __tablename__ = "agent_scripts"
    __table_args__ = (CheckConstraint("kind IN ('text', 'url')", name="ck_agent_scripts_kind"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    kind: str = Field(sa_column=Column(String(8), nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    description: str = _d("")
    enabled: bool = _d(True)
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    description: str = _d("")
    strategy_id: int = Field(foreign_key="strategies.id")
    list_id: int = Field(foreign_key="contact_lists.id")
    finish: dict[str, Any] = Field(default_factory=dict, sa_column=_json())      # FinishCriteria
    schedule: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSONB))  # Schedule
    last_scheduled_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    priority: int = _d(5)
    enabled: bool = _d(True)
    filter_id: Optional[int] = Field(default=None, foreign_key="filter_templates.id")
    # The zone its jobs run in (a job may be started in another); NULL: the default zone.
    zone: Optional[str] = Field(default=None, sa_column=Column(
        String(100), ForeignKey("zones.name", onupdate="CASCADE"), nullable=True))
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class CampaignList(SQLModel, table=True):
    """A contact list a campaign dials, with its priority (10 highest) and sort order
    (core/dialling.py); `campaigns.list_id` is the first of them, the highest priority."""
    __tablename__ = "campaign_lists"
    campaign_id: int = Field(sa_column=Column(Integer, ForeignKey("campaigns.id", ondelete="CASCADE"),
                                              primary_key=True))
    list_id: int = Field(sa_column=Column(Integer, ForeignKey("contact_lists.id"), primary_key=True, index=True))
    priority: int = _d(5)
    sort: list[dict[str, Any]] = Field(default_factory=list, sa_column=_json("'[]'::jsonb"))


class Job(SQLModel, table=True):
    """One run of a campaign, with its lifecycle state (core.lifecycle) and frozen inputs."""
    __tablename__ = "jobs"
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id", index=True)
    strategy_id: int = Field(foreign_key="strategies.id")
    state: str = Field(default="queued", index=True)
    finishing: bool = _d(False)              # a stop caused by a finish criterion ends "completed"
    reason: str = _d("")
    shards: int = _d(8)
    managers: int = _d(1)                    # fixed at creation: manager names must not shift
    zone: str = Field(default="default", sa_column=Column(String(100), nullable=False, server_default="default"))
    # Where its managers are now (core.zones.effective_zone, applied by the director); NULL:
    # nowhere yet, or waiting for a zone to become available.
    placed_zone: Optional[str] = Field(default=None, sa_column=Column(String(100), nullable=True))
    finish: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    # The filter expression in force (copied from the campaign's template at creation, changed
    # on a running job through the API); NULL: every contact of the list.
    filter: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    # Run-time changes through the API (core/jobchanges.py): its own priority (NULL: the
    # campaign's) and each handler's pacing as changed ({handler: pacing}; {}: the strategy's).
    priority: Optional[int] = None
    pacing: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    # Which due items a claim takes first (core.dialling; changed on a running job), and the
    # campaign's lists as they were when the job was created.
    dialling_order: list[str] = Field(default_factory=lambda: ["priority", "retries", "regular"],
                                      sa_column=_json('\'["priority", "retries", "regular"]\'::jsonb'))
    lists: list[dict[str, Any]] = Field(default_factory=list, sa_column=_json("'[]'::jsonb"))
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    started_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    ended_at: Optional[datetime] = Field(default=None, sa_column=_ts())


class WorkItem(SQLModel, table=True):
    """One contact in one job: where it stands in the strategy and when it is next due."""
    __tablename__ = "work_items"
    # Every claim and settlement moves `state`, so neither update can be HOT and each index is
    # written again: only the partial indexes the hot path reads (items never attempted, by
    # rank; items attempted and due again, by time — core.dialling; items in flight, for
    # reconciliation and drains), an item in one at most. One item per contact holds by
    # construction (create_job).
    __table_args__ = (
        Index("ix_work_items_ready", "job_id", "priority", "rank", postgresql_where=text("state = 'ready'")),
        Index("ix_work_items_scheduled", "job_id", "next_at", postgresql_where=text("state = 'scheduled'")),
        Index("ix_work_items_in_flight", "job_id", "shard", postgresql_where=text("state = 'in_flight'")),
    )
    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    job_id: int = Field(foreign_key="jobs.id")
    contact_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    shard: int
    state: str = _d("ready")                 # ready | in_flight | scheduled | done
    next_at: datetime = Field(sa_column=_ts(False))
    handler: str
    address_index: int = _d(0)
    retries: dict[str, int] = Field(default_factory=dict, sa_column=_json())
    address_attempts: dict[str, int] = Field(default_factory=dict, sa_column=_json())
    attempts: int = _d(0)
    last_code: Optional[str] = None
    priority: bool = _d(False)               # a priority contact (core.dialling)
    rank: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # The intent of the attempt in flight (number `attempts`): set by the claim, committed
    # before the order leaves, cleared when its outcome settles and the ledger row is written.
    in_flight_epoch: Optional[int] = None
    in_flight_gateway: Optional[str] = None
    in_flight_at: Optional[datetime] = Field(default=None, sa_column=_ts())


class ShardLease(SQLModel, table=True):
    """Who works a shard of a job; `epoch` only grows and fences every write of the holder."""
    __tablename__ = "shard_leases"
    job_id: int = Field(foreign_key="jobs.id", primary_key=True)
    shard: int = Field(primary_key=True)
    holder: Optional[str] = None
    epoch: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    expires_at: Optional[datetime] = Field(default=None, sa_column=_ts())


class Attempt(SQLModel, table=True):
    """The ledger: one row per finished attempt, appended (COPY) and never updated. A
    restricted attempt is written when the rule refuses it, an allowed one when its outcome
    settles; until then its intent lives on the work item (`in_flight_*`)."""
    __tablename__ = "attempts"
    # Rows arrive in time order: a BRIN index serves the rule engine's rolling-period rebuild
    # at almost no cost per row; (job, time) serves a job's rows, and a range of them (reports,
    # purges).
    __table_args__ = (Index("ix_attempts_created_at", "created_at", postgresql_using="brin"),
                      Index("ix_attempts_job_at", "job_id", "created_at"))
    work_item_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    attempt_no: int = Field(sa_column=Column(Integer, primary_key=True))
    job_id: int
    campaign_id: int
    contact_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    shard: int
    epoch: int = Field(sa_column=Column(BigInteger, nullable=False))
    handler: str
    channel: str
    address: Optional[str] = None
    verdict: str                          # allowed | restricted
    rule: str                             # the rule that decided the verdict
    reason: str = _d("")
    gateway: Optional[str] = None
    code: Optional[str] = None            # completion code
    created_at: datetime = Field(sa_column=_ts(False))
    completed_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    details: dict[str, Any] = Field(default_factory=dict, sa_column=_json())


class Agent(SQLModel, table=True):
    __tablename__ = "agents"
    id: Optional[int] = Field(default=None, primary_key=True)
    login: str = Field(sa_column=Column(String(100), nullable=False, unique=True))
    name: str = _d("")
    skills: list[str] = Field(default_factory=list, sa_column=_json("'[]'::jsonb"))
    groups: list[str] = Field(default_factory=list, sa_column=_json("'[]'::jsonb"))
    state: str = _d("logged_out")
    job_id: Optional[int] = Field(default=None, foreign_key="jobs.id")
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    # the screen pop of the call the agent holds (reserved, on it, wrapping it up): a restarted
    # Agent Manager pops it again on the agent's desktop and checks the disposition against it
    screen: Optional[dict] = Field(default=None, sa_column=Column(JSONB, nullable=True))


class AgentEventRow(SQLModel, table=True):
    """Every agent transition (core.agents.state), appended in batches (COPY) and never
    updated: for reporting, and the latest row per agent rebuilds the Agent Manager. Each row
    is the agent as it stood after the event (its pending deferred command, its wrap-up limit)."""
    __tablename__ = "agent_events"
    __table_args__ = (Index("ix_agent_events_agent", "agent_id", "id"),
                      Index("ix_agent_events_at", "at", postgresql_using="brin"))
    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    agent_id: int = Field(foreign_key="agents.id")
    at: datetime = Field(sa_column=_ts(False))
    from_state: str
    to_state: str
    event: str                            # a state event, or attach / detach / move
    reason: Optional[str] = None          # not-ready reason, disposition code, why
    job_id: Optional[int] = None          # the call's job, else the job attached to
    call_id: Optional[str] = None
    pending: Optional[str] = None         # a deferred not_ready / logout / force_logoff
    pending_reason: Optional[str] = None
    wrap_until: Optional[datetime] = Field(default=None, sa_column=_ts())


class AgentDispositionRow(SQLModel, table=True):
    """An agent's disposition of a placed call (`call_id`: its attempt id) that the Agent
    Manager acknowledged and nobody has written into the ledger yet: inserted with the agent's
    `dispose` transition (the same flush), read back by a restarted Agent Manager, deleted by
    the transaction that sets the attempt's code (store/dispositions.py)."""
    __tablename__ = "agent_dispositions"
    call_id: str = Field(sa_column=Column(String(40), primary_key=True))
    job_id: int = Field(sa_column=Column(Integer, nullable=False))
    agent_id: int = Field(sa_column=Column(Integer, nullable=False))
    code: str = Field(sa_column=Column(Text, nullable=False))
    callback_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    at: datetime = Field(sa_column=_ts(False))
    talk_s: Optional[float] = None
    wrap_s: Optional[float] = None
    written_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class RuleRow(SQLModel, table=True):
    """A system rule (campaign_id NULL) or a campaign rule; see core.rules.Rule."""
    __tablename__ = "rules"
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: Optional[int] = Field(default=None, foreign_key="campaigns.id")
    kind: str
    enabled: bool = _d(True)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=_json())


class Zone(SQLModel, table=True):
    """A group of POM servers (those with the `zone:<name>` Ray resource) and where its jobs go
    when it is not available (core.zones). A zone in use cannot be deleted."""
    __tablename__ = "zones"
    __table_args__ = (CheckConstraint("state IN ('up', 'down', 'maintenance')", name="ck_zones_state"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), nullable=False, unique=True))
    failover_zone: Optional[str] = Field(default=None, sa_column=Column(
        String(100), ForeignKey("zones.name", onupdate="CASCADE"), nullable=True))
    state: str = _d("up")
    reason: str = _d("")                     # why it was last set to its state (the command's)
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class ImportJob(SQLModel, table=True):
    """A file import into a contact list (kind `contacts`) or into a DNC list (kind `dnc`)."""
    __tablename__ = "import_jobs"
    __table_args__ = (CheckConstraint("(kind = 'dnc') = (dnc_list_id IS NOT NULL) AND "
                                      "(kind = 'dnc') = (list_id IS NULL)", name="ck_import_jobs_target"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    list_id: Optional[int] = Field(default=None, foreign_key="contact_lists.id")
    dnc_list_id: Optional[int] = Field(default=None, sa_column=Column(
        Integer, ForeignKey("dnc_lists.id", ondelete="CASCADE"), nullable=True))
    kind: str = _d("contacts")                # contacts | dnc
    source: str = _d("")
    state: str = _d("queued")
    total: int = _d(0)
    imported: int = _d(0)
    rejected: int = _d(0)
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_column=_json("'[]'::jsonb"))
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    finished_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    # file imports (store/imports.py): the options, the spooled file, the counts of done chunks
    options: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    path: Optional[str] = None
    message: Optional[str] = None             # why the file as a whole failed
    rows_read: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    rows_loaded: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    rows_rejected: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    duplicates: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    dnc_flagged: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    chunks: int = _d(0)                       # how many chunks the file was cut into (0: not yet)
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    # an import from a SQL query (core/imports/query.py): the source, never a password
    query: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSONB, nullable=True))
    schedule_id: Optional[int] = Field(default=None, sa_column=Column(
        Integer, ForeignKey("import_schedules.id", ondelete="SET NULL"), nullable=True))


class ImportSchedule(SQLModel, table=True):
    """A SQL-query import run by the director at each due time of its cron `schedule`
    (core.schedule); `last_run_at` is the due time last served, so a time runs once."""
    __tablename__ = "import_schedules"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    list_id: int = Field(sa_column=Column(Integer, ForeignKey("contact_lists.id", ondelete="CASCADE"),
                                          nullable=False))
    schedule: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    source: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    options: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    last_run_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    last_import_id: Optional[int] = None
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class ImportChunk(SQLModel, table=True):
    """A chunk of an import's file, written in the transaction that merged its contacts: an
    import resumed after a crash skips the chunks it finds here."""
    __tablename__ = "import_chunks"
    import_id: int = Field(sa_column=Column(Integer, ForeignKey("import_jobs.id", ondelete="CASCADE"),
                                            primary_key=True))
    chunk: int = Field(sa_column=Column(Integer, primary_key=True))
    rows_read: int = _d(0)
    rows_loaded: int = _d(0)
    rows_rejected: int = _d(0)
    duplicates: int = _d(0)
    dnc_flagged: int = _d(0)
    # a split import: {"<list_id>": {"rows_loaded", "duplicates", "dnc_flagged"}} (core/imports/splitter.py)
    targets: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSONB))


class ImportReject(SQLModel, table=True):
    """A refused row of an import: its line, the field at fault, why, and its cells."""
    __tablename__ = "import_rejects"
    import_id: int = Field(sa_column=Column(Integer, ForeignKey("import_jobs.id", ondelete="CASCADE"),
                                            primary_key=True))
    line: int = Field(sa_column=Column(BigInteger, primary_key=True))
    field: str = _d("")
    reason: str
    raw: list[str] = Field(default_factory=list, sa_column=_json("'[]'::jsonb"))


class Alarm(SQLModel, table=True):
    """A load alarm (core.load): raised and cleared by the load monitors, at most one active
    per source (`server.cpu@<server>`, `database.blocked`...). `details`: metric, server, the
    reading and threshold when raised (and `cleared_value` when cleared)."""
    __tablename__ = "alarms"
    __table_args__ = (Index("ux_alarms_active", "source", unique=True, postgresql_where=text("cleared_at IS NULL")),
                      Index("ix_alarms_created_at", "created_at"))
    id: Optional[int] = Field(default=None, primary_key=True)
    source: str
    severity: str = _d("warning")
    message: str
    details: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    cleared_at: Optional[datetime] = Field(default=None, sa_column=_ts())


class LoadReading(SQLModel, table=True):
    """The latest sample of each POM server's load monitor (the leading one's also holds the
    database and POM readings): what `GET /api/v1/load` and the metrics show."""
    __tablename__ = "load_readings"
    server: str = Field(sa_column=Column(String(64), primary_key=True))
    node_id: str = _d("")
    leader: bool = _d(False)
    readings: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    sampled_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class LoadConfigRow(SQLModel, table=True):
    """The load monitor's configuration (core.load.LoadConfig as a document; one row, id 1;
    none: the defaults)."""
    __tablename__ = "load_config"
    id: int = Field(default=1, primary_key=True)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class OutboxEvent(SQLModel, table=True):
    """Events for the Kafka relay, written in the same transaction as the change they report."""
    __tablename__ = "event_outbox"
    __table_args__ = (Index("ix_event_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    topic: str
    key: str = _d("")
    payload: Any = Field(sa_column=Column(JSONB, nullable=False))
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    published_at: Optional[datetime] = Field(default=None, sa_column=_ts())


class ApiToken(SQLModel, table=True):
    """An API token (core.tokens): only its SHA-256 is kept, and its first characters (`prefix`)
    to tell it apart. Revoked, never deleted: the audit log names it."""
    __tablename__ = "api_tokens"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str
    token_hash: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    role: str = _d("admin")                  # admin | supervisor | integration | agent
    prefix: str = Field(default="", sa_column=Column(String(16), nullable=False, server_default=""))
    agent_id: Optional[int] = Field(default=None, foreign_key="agents.id")   # an agent token's agent
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    revoked_at: Optional[datetime] = Field(default=None, sa_column=_ts())


class AuditEntry(SQLModel, table=True):
    """A change made through the API (a request other than GET that succeeded): who (the
    token, its name and role as they were), what (method, path, route, resource, a summary
    of the request) and when. Appended, never updated."""
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_token", "token_id", "id"))
    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    token_id: Optional[int] = Field(default=None, foreign_key="api_tokens.id")
    token_name: str
    role: str
    method: str = Field(sa_column=Column(String(10), nullable=False))
    path: str = Field(sa_column=Column(Text, nullable=False))
    route: str = Field(sa_column=Column(Text, nullable=False))     # the path template
    resource: str = _d("")                   # the collection: jobs, campaigns, tokens...
    resource_id: Optional[str] = None        # the path's id, or the id a creation returned
    status: int
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=_json())


class PacingCounter(SQLModel, table=True):
    """One campaign's call outcomes in one bucket of business time (core/pacing/window.py): the
    persisted window of the nuisance rule (summed over 30 days or 24 hours) and the recent
    statistics a new job's pacer starts from."""
    __tablename__ = "pacing_counters"
    campaign_id: int = Field(sa_column=Column(Integer, ForeignKey("campaigns.id", ondelete="CASCADE"),
                                              primary_key=True))
    bucket: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    dials: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    live: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    abandoned: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    machine: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    answer_s: float = _d(0.0)
    talk_s: float = _d(0.0)
    talked: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class PurgeRun(SQLModel, table=True):
    """A purge (core.retention): scheduled by the director or asked for by an admin, carried out
    by the director in short batches; `cutoffs` per target, `counts` of rows deleted so far."""
    __tablename__ = "purge_runs"
    __table_args__ = (Index("ix_purge_runs_pending", "id",
                            postgresql_where=text("state IN ('queued', 'deferred', 'running')")),)
    id: Optional[int] = Field(default=None, primary_key=True)
    trigger: str                              # schedule | manual
    state: str = _d("queued")                 # queued | deferred | running | done | failed
    requested_by: Optional[str] = None        # the token's name of a manual run
    cutoffs: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    batches: int = _d(0)
    message: Optional[str] = None
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    started_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    finished_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class RetentionConfigRow(SQLModel, table=True):
    """Retention and the purge schedule (core.retention.RetentionConfig as a document; one row,
    id 1; none: the defaults)."""
    __tablename__ = "retention_config"
    id: int = Field(default=1, primary_key=True)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))


class IdempotencyKey(SQLModel, table=True):
    """The first answer of a request sent with an `Idempotency-Key` header (core/idempotency.py):
    `status` null while it runs; kept until `expires_at`."""
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)
    scope: str = Field(sa_column=Column(String(300), primary_key=True))      # the route: "POST /api/v1/jobs"
    key: str = Field(sa_column=Column(String(200), primary_key=True))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    status: Optional[int] = None
    answer: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSONB))
    created_at: Optional[datetime] = Field(default=None, sa_column=_ts(False, True))
    expires_at: datetime = Field(sa_column=_ts(False))
