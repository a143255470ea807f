"""The Agent Manager's statements: the agents, their transitions appended in batches (COPY
into `agent_events`, one transaction per flush together with the agents' current rows), and
the latest transition per agent that a restarted Agent Manager rebuilds from.

A deleted agent keeps its row, marked `state = 'deleted'`: its transitions, the
attempts and tokens that name it keep a valid reference; the Agent Manager never loads it, a
flush never overwrites the mark, and creating its login again brings the row back."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core.agents.disposal import disposals, kept
from ..core.agents.nailing import NAIL, REUSE, UNNAIL
from ..core.agents.state import Transition
from ..core.events import AGENTS_TOPIC, agent_event, agent_key
from .base import Store
from .dispositions import dispose, job_end

EVENT_COLUMNS = ("agent_id", "at", "from_state", "to_state", "event", "reason", "job_id", "call_id",
                 "pending", "pending_reason", "wrap_until")

# Every agent (but the deleted) with its latest transition (one index probe per agent on (agent_id, id)).
LOAD_SQL = """
SELECT a.id, a.login, a.name, a.skills, a.groups, a.state AS row_state, a.job_id, a.updated_at, a.screen,
       e.at, e.to_state, e.event, e.reason, e.job_id AS event_job, e.call_id, e.pending, e.pending_reason,
       e.wrap_until
FROM agents a
LEFT JOIN LATERAL (SELECT * FROM agent_events x WHERE x.agent_id = a.id ORDER BY x.id DESC LIMIT 1) e ON true
WHERE a.state <> 'deleted'
ORDER BY a.id"""

# The latest nail / reuse / unnail event of each agent logged in (core/agents/nailing.py): the
# sessions a restarted Agent Manager re-attaches (logged-out agents hold none).
SESSIONS_SQL = """
SELECT a.id, e.event, e.reason
FROM agents a
JOIN LATERAL (SELECT event, reason FROM agent_events x WHERE x.agent_id = a.id AND x.event = ANY(%s)
              ORDER BY x.id DESC LIMIT 1) e ON true
WHERE a.state NOT IN ('logged_out', 'deleted')"""

# One outbox row per agent and flush (its events in order, key agent-<id>): the relay
# publishes them on pom.agents.
OUTBOX_SQL = """
INSERT INTO event_outbox (topic, key, payload)
SELECT %s, r.key, r.events FROM jsonb_to_recordset(%s::jsonb) AS r(key text, events jsonb)"""

UPDATE_AGENTS_SQL = """
UPDATE agents a SET state = r.state, job_id = r.job_id, updated_at = r.at, screen = r.screen
FROM jsonb_to_recordset(%s::jsonb) AS r(id int, state text, job_id int, at timestamptz, screen jsonb)
WHERE a.id = r.id AND a.state <> 'deleted'"""

# The agents' dispositions acknowledged (core/agents/disposal.py `kept`), until a manager writes
# them into the ledger and deletes them (store/dispositions.py).
KEEP_DISPOSITIONS_SQL = """
INSERT INTO agent_dispositions (call_id, job_id, agent_id, code, callback_at, at, talk_s, wrap_s)
SELECT r.call_id, r.job_id, r.agent_id, r.code, r.callback_at, r.at, r.talk_s, r.wrap_s
FROM jsonb_to_recordset(%s::jsonb) AS r(call_id text, job_id int, agent_id int, code text,
                                         callback_at timestamptz, at timestamptz, talk_s float8, wrap_s float8)
ON CONFLICT (call_id) DO UPDATE SET job_id = EXCLUDED.job_id, agent_id = EXCLUDED.agent_id, code = EXCLUDED.code,
    callback_at = EXCLUDED.callback_at, at = EXCLUDED.at, talk_s = EXCLUDED.talk_s, wrap_s = EXCLUDED.wrap_s"""
DISPOSITION_COLUMNS = ("agent_id", "call_id", "job_id", "code", "callback_at", "at", "talk_s", "wrap_s")


class AgentStore(Store):
    @contextmanager
    def transaction(self):
        with self.conn.transaction():
            yield

    def load(self) -> list[dict[str, Any]]:
        """Every agent, with the fields of its latest transition (NULL if it has none)."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(LOAD_SQL).fetchall()

    def sessions(self) -> list[tuple[int, str, str]]:
        """(agent id, event, session id) of each logged-in agent's latest nailing event."""
        return self.conn.execute(SESSIONS_SQL, ([NAIL, REUSE, UNNAIL],)).fetchall()

    def create_agent(self, login: str, name: str = "", skills: Iterable[str] = (), groups: Iterable[str] = ()) -> int:
        """The id of agent `login`, created (or its name, skills and groups replaced; a deleted
        one logged out again: its old tokens stay revoked)."""
        return self.conn.execute(
            "INSERT INTO agents (login, name, skills, groups) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (login) DO UPDATE SET name = EXCLUDED.name, skills = EXCLUDED.skills, "
            "groups = EXCLUDED.groups, state = CASE WHEN agents.state = 'deleted' THEN 'logged_out' "
            "ELSE agents.state END RETURNING id",
            (login, name, Jsonb(sorted(set(skills))), Jsonb(sorted(set(groups))))).fetchone()[0]

    def update_agent(self, agent_id: int, *, name: str | None = None, skills: Iterable[str] | None = None,
                     groups: Iterable[str] | None = None) -> None:
        """Set the name, skills or groups of an agent (those not None)."""
        self.conn.execute(
            "UPDATE agents SET name = COALESCE(%s, name), skills = COALESCE(%s, skills), "
            "groups = COALESCE(%s, groups) WHERE id = %s AND state <> 'deleted'",
            (name, None if skills is None else Jsonb(sorted(set(skills))),
             None if groups is None else Jsonb(sorted(set(groups))), agent_id))

    def delete_agent(self, agent_id: int) -> list[int]:
        """Mark the agent deleted and revoke the tokens acting as it, in one transaction; the
        ids of the tokens revoked now."""
        with self.conn.transaction():
            self.conn.execute("UPDATE agents SET state = 'deleted', job_id = NULL, screen = NULL, updated_at = now() "
                              "WHERE id = %s", (agent_id,))
            rows = self.conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE agent_id = %s "
                                     "AND revoked_at IS NULL RETURNING id", (agent_id,)).fetchall()
        return sorted(r[0] for r in rows)

    def write(self, transitions: Sequence[Transition],
              states: Sequence[tuple[int, str, int | None, datetime, dict | None]],
              dispositions: Sequence[Mapping[str, Any]] = ()) -> None:
        """One flush: append `transitions` (COPY) with their events in the outbox, set each
        agent's current row (id, state, job_id, at, the screen pop of the call it holds) and
        keep the agents' `dispositions` of placed calls until they are in the ledger, in one
        transaction."""
        keep = kept(dispositions)
        if not transitions and not states and not keep:
            return
        with self.conn.transaction():
            if transitions:
                with self.conn.cursor() as cur:
                    with cur.copy(f"COPY agent_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                        for t in transitions:
                            copy.write_row((t.agent_id, t.at, str(t.from_state), str(t.to_state), t.event,
                                            t.reason, t.job_id, t.call_id, t.pending, t.pending_reason,
                                            t.wrap_until))
                by_agent: dict[int, list[dict[str, Any]]] = {}
                for t in transitions:
                    by_agent.setdefault(t.agent_id, []).append(agent_event(t))
                outbox = [{"key": agent_key(a), "events": events} for a, events in by_agent.items()]
                self.conn.execute(OUTBOX_SQL, (AGENTS_TOPIC, orjson.dumps(outbox).decode()))
            if states:
                rows = [{"id": i, "state": s, "job_id": j, "at": at, "screen": screen}
                        for i, s, j, at, screen in states]
                self.conn.execute(UPDATE_AGENTS_SQL, (orjson.dumps(rows).decode(),))
            if keep:
                self.conn.execute(KEEP_DISPOSITIONS_SQL, (orjson.dumps(
                    [{k: d.get(k) for k in DISPOSITION_COLUMNS} for d in keep]).decode(),))

    def dispositions(self, older_than_s: float | None = None, known: Sequence[str] = (),
                     ended: Sequence[int] = ()) -> list[dict[str, Any]]:
        """The dispositions acknowledged and not yet in the ledger, oldest first (`rebuild`);
        with `older_than_s`, only those not `known` that were written at least that many
        seconds ago or are of a job in `ended` (taken by a manager that stopped before writing
        them)."""
        where = "" if older_than_s is None else \
            "WHERE (written_at <= now() - make_interval(secs => %s) OR job_id = ANY(%s)) " \
            "AND NOT (call_id = ANY(%s)) "
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(f"SELECT {', '.join(DISPOSITION_COLUMNS)} FROM agent_dispositions {where}"
                               "ORDER BY at, call_id", () if older_than_s is None else
                               (older_than_s, list(ended), list(known))).fetchall()

    def dispose(self, job_id: int, dispositions: Sequence[Mapping[str, Any]],
                expire_before: datetime | None = None) -> dict[str, list[str]]:
        """Write the dispositions of a job no Campaign Manager takes them for any more (it
        stopped while the agents wrapped up): decided as a manager would (core/agents/disposal.py,
        a call-back only while the job is alive) and applied by the same function."""
        state, end_time = job_end(self.conn, job_id)
        return dispose(self.conn, job_id, disposals(dispositions, state, end_time), expire_before)

    def events(self, agent_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """The latest transitions of one agent, newest first (supervisor pages, tests)."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(f"SELECT id, {', '.join(EVENT_COLUMNS)} FROM agent_events WHERE agent_id = %s "
                               "ORDER BY id DESC LIMIT %s", (agent_id, limit)).fetchall()
