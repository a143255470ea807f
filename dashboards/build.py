"""Writes the Grafana dashboards of POM (campaigns.json, agents.json, system.json, load.json)
beside this file.

    python dashboards/build.py

Every query uses only the `pom_` families that the gateway's `/metrics` exports (docs/api.md,
"Metrics"); tests/unit/test_dashboards.py checks that, and that the JSON here is what this
script writes. Each dashboard has a `datasource` variable, so it works with any Prometheus
data source of an existing Grafana.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


class Board:
    def __init__(self, uid: str, title: str, description: str, variables: list[dict] = ()):
        self.uid, self.title, self.description = uid, title, description
        self.variables = [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                           "query": "prometheus", "current": {}, "hide": 0}, *variables]
        self.panels: list[dict] = []
        self.x = self.y = self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def panel(self, kind: str, title: str, targets: list[tuple[str, str]], *, w: int = 12, h: int = 8,
              unit: str = "short", description: str = "", stack: bool = False, instant: bool = False) -> None:
        if self.x + w > 24:
            self._newline()
        panel = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": DS, "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                         "instant": instant, "range": not instant}
                        for i, (expr, legend) in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
        }
        if kind == "timeseries":
            panel["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal" if stack else "none"},
                                                          "fillOpacity": 20 if stack else 0}
            panel["options"] = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
                                "tooltip": {"mode": "multi"}}
        elif kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
        elif kind == "table":
            panel["transformations"] = [{"id": "labelsToFields", "options": {}}]
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        self.y += self.row_h
        self.x = self.row_h = 0

    def json(self) -> dict:
        return {"uid": self.uid, "title": self.title, "description": self.description, "tags": ["pom"],
                "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True,
                "refresh": "15s", "time": {"from": "now-1h", "to": "now"},
                "templating": {"list": self.variables}, "annotations": {"list": []}, "panels": self.panels}


def _query_var(name: str, label: str, query: str) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "hide": 0, "sort": 3}


def campaigns() -> dict:
    b = Board("pom-campaigns", "POM — Campaigns",
              "Jobs, their work items and attempts, by channel, completion code and rule.",
              [_query_var("job", "Job", "label_values(pom_job_info, job)")])
    b.row("Jobs")
    for state, title in (("running", "Running"), ("paused", "Paused"), ("queued", "Queued"),
                         ("stopping", "Stopping"), ("completed", "Completed"), ("stopped", "Stopped")):
        b.panel("stat", f"{title} jobs", [(f'pom_jobs{{state="{state}"}}', "")], w=4, h=4)
    b.panel("table", "Jobs not yet ended", [("pom_job_info", "")], w=12, h=8, instant=True,
            description="One row per job not completed, stopped or failed, with its campaign and state.")
    b.panel("bargauge", "Progress (done / items)", [
        ('sum by (job) (pom_work_items{job=~"$job", state="done"}) / sum by (job) (pom_work_items{job=~"$job"})',
         "job {{job}}")], w=12, h=8, unit="percentunit")
    b.panel("timeseries", "Work items by state", [
        ('sum by (state) (pom_work_items{job=~"$job"})', "{{state}}")], stack=True)
    b.panel("timeseries", "Attempts in flight per job", [
        ('sum by (job) (pom_manager_in_flight{job=~"$job"})', "job {{job}}")])
    b.row("Attempts (the ledger)")
    b.panel("timeseries", "Attempts per second by channel", [
        (f"sum by (channel) (rate(pom_attempts_total[{RATE}]))", "{{channel}}")], unit="ops", stack=True)
    b.panel("timeseries", "Attempts per second by completion code", [
        (f"sum by (code) (rate(pom_attempts_total[{RATE}]))", "{{code}}")], unit="ops", stack=True)
    b.panel("bargauge", "Attempts by completion code (all time)", [
        ("sort_desc(sum by (code) (pom_attempts_total))", "{{code}}")], instant=True)
    b.panel("timeseries", "Dispatches per second per job (managers)", [
        (f'sum by (job) (rate(pom_manager_dispatched_total{{job=~"$job"}}[{RATE}]))', "job {{job}}"),
        (f'sum by (job) (rate(pom_manager_restricted_total{{job=~"$job"}}[{RATE}]))', "job {{job}} restricted")],
        unit="ops")
    b.row("Rules")
    b.panel("timeseries", "Restricted attempts per second by rule", [
        (f'sum by (rule) (rate(pom_rule_verdicts_total{{verdict="restricted"}}[{RATE}]))', "{{rule}}")],
        unit="ops", stack=True)
    b.panel("stat", "Restricted share (5 min)", [
        ('sum(rate(pom_rule_verdicts_total{verdict="restricted"}[5m])) / sum(rate(pom_rule_verdicts_total[5m]))',
         "")], unit="percentunit")
    return b.json()


def system() -> dict:
    b = Board("pom-system", "POM — System",
              "Actors on every POM server, media gateways, managers, the director, the rule engine, "
              "the database and the outbox.")
    b.row("Health")
    b.panel("stat", "Database", [("pom_database_up", "")], w=4, h=4)
    b.panel("stat", "Actors down", [("count(pom_actor_up == 0) or vector(0)", "")], w=4, h=4)
    b.panel("stat", "Director draining", [("pom_director_draining", "")], w=4, h=4)
    b.panel("stat", "Gateways", [("pom_director_gateways", "")], w=4, h=4)
    b.panel("stat", "Unpublished outbox rows", [("pom_outbox_unpublished_rows", "")], w=4, h=4)
    b.panel("stat", "Outbox lag", [("pom_outbox_lag_seconds", "")], w=4, h=4, unit="s")
    b.panel("table", "Actors", [("pom_actor_up", "")], w=12, h=9, instant=True,
            description="1: answered its probe within the scrape's timeout.")
    b.panel("table", "Actors per POM server", [("count by (node, kind) (pom_actor_info)", "")], w=12, h=9,
            instant=True)
    b.panel("timeseries", "Actor restarts by kind", [("sum by (kind) (pom_actor_restarts)", "{{kind}}")], w=24, h=6,
            description="Times Ray restarted the live actors after they died (pom_actor_restarts).")
    b.row("Media gateways")
    b.panel("timeseries", "Orders in flight by gateway and channel", [
        ("sum by (gateway, channel) (pom_gateway_orders_in_flight)", "{{gateway}} {{channel}}")], stack=True)
    b.panel("timeseries", "Orders sent per second by server and channel", [
        (f"sum by (node, channel) (rate(pom_gateway_orders_submitted_total[{RATE}]))", "{{node}} {{channel}}")],
        unit="ops")
    b.panel("timeseries", "Orders pending an outcome; outcomes queued for managers", [
        ("sum by (gateway) (pom_gateway_orders_pending)", "{{gateway}} pending"),
        ("sum by (gateway) (pom_gateway_outcomes_queued)", "{{gateway}} queued")])
    b.panel("timeseries", "Orders refused per second by reason", [
        (f"sum by (reason) (rate(pom_gateway_orders_refused_total[{RATE}]))", "{{reason}}")], unit="ops")
    b.row("Campaign managers")
    b.panel("timeseries", "Settled per second per manager", [
        (f"sum by (manager) (rate(pom_manager_settled_total[{RATE}]))", "{{manager}}")], unit="ops")
    b.panel("timeseries", "Cycle time by phase (all managers)", [
        (f"sum by (phase) (rate(pom_manager_phase_seconds_total[{RATE}]))", "{{phase}}")],
        unit="percentunit", stack=True, description="Seconds per second spent in each phase of the cycle.")
    b.panel("timeseries", "Failed cycles, adoptions, refusals per second", [
        (f"sum by (manager) (rate(pom_manager_cycle_errors_total[{RATE}]))", "{{manager}} cycle errors"),
        (f"sum by (manager) (rate(pom_manager_adopted_total[{RATE}]))", "{{manager}} adopted"),
        (f"sum by (manager) (rate(pom_manager_refused_total[{RATE}]))", "{{manager}} refused")], unit="ops")
    b.panel("timeseries", "Shards held per manager", [("pom_manager_shards", "{{manager}}")], stack=True)
    b.panel("timeseries", "Dispatch latency (claim to accepted by the gateway)", [
        (f"histogram_quantile({q}, sum by (le) (rate(pom_manager_dispatch_latency_seconds_bucket[{RATE}])))",
         f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)], unit="s",
        description="Seconds from the start of an attempt's claim to its order accepted by a media gateway "
                    "(every manager; NaN while nothing is dispatched).")
    b.panel("timeseries", "Mean dispatch latency per job", [
        (f"sum by (job) (rate(pom_manager_dispatch_latency_seconds_sum[{RATE}])) / "
         f"sum by (job) (rate(pom_manager_dispatch_latency_seconds_count[{RATE}]))", "job {{job}}")], unit="s")
    b.row("Director and rule engine")
    b.panel("timeseries", "Director ticks per second", [
        (f"rate(pom_director_ticks_total[{RATE}])", "ticks")], unit="ops", w=8)
    b.panel("timeseries", "Candidates checked per second", [
        (f"rate(pom_rule_engine_checked_total[{RATE}])", "checked")], unit="ops", w=8)
    b.panel("timeseries", "Rules loaded; addresses tracked", [
        ("pom_rule_engine_rules", "rules"), ("pom_rule_engine_tracked_addresses", "tracked addresses")], w=8)
    b.row("Outbox")
    b.panel("timeseries", "Outbox", [("pom_outbox_unpublished_rows", "unpublished rows"),
                                     ("pom_outbox_lag_seconds", "lag (s)")], w=24)
    return b.json()


def agents() -> dict:
    b = Board("pom-agents", "POM — Agents",
              "Agents by state and job, license pools, reservations and the answered-to-agent latency (the "
              "Agent Manager), and each job's pacing (its Campaign Managers).",
              [_query_var("job", "Job", "label_values(pom_job_info, job)")])
    b.row("Agents")
    for state, title in (("ready", "Ready"), ("on_call", "On a call"), ("wrap_up", "Wrap-up"),
                         ("not_ready", "Not ready"), ("reserved", "Reserved")):
        b.panel("stat", title, [(f'pom_agents_by_state{{state="{state}"}}', "")], w=4, h=4)
    b.panel("stat", "Logged in", [("sum(pom_agents_by_state)", "")], w=4, h=4)
    b.panel("timeseries", "Agents by state", [("sum by (state) (pom_agents_by_state)", "{{state}}")], stack=True)
    b.panel("timeseries", "Agents per job by state", [
        ('sum by (job, state) (pom_agents{job=~"$job"})', "job {{job}} {{state}}")], stack=True,
        description="Logged-in agents attached to each job (agents attached to no job are left out).")
    b.row("Licenses")
    b.panel("bargauge", "Licenses in use per pool", [("pom_licenses_in_use", "{{pool}}")], instant=True,
            description="Agents attached to the running jobs of each agent pool (preview, predictive). "
                        "Pool sizes: pom_licenses_size (absent when unlimited).")
    b.panel("timeseries", "Licenses granted per job", [
        ('pom_license_grant{job=~"$job"}', "job {{job}} ({{pool}})")],
        description="Each running job's grant from its pool (absent for an unlimited grant).")
    b.row("Calls to agents")
    b.panel("timeseries", "Reservations per second", [
        (f"rate(pom_agent_reservations_total[{RATE}])", "reserved"),
        (f"rate(pom_agent_no_agent_total[{RATE}])", "no agent ready"),
        (f"rate(pom_agent_reservation_timeouts_total[{RATE}])", "timed out")], unit="ops")
    b.panel("timeseries", "Answered-to-agent latency (reserve to connect)", [
        (f"histogram_quantile({q}, sum by (le) (rate(pom_agent_connect_latency_seconds_bucket[5m])))",
         f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)], unit="s",
        description="Seconds from an answered call's agent reservation to its connect (NaN while no call "
                    "connects).")
    b.row("Pacing")
    b.panel("table", "Pacing per job and handler", [('pom_pacing_info{job=~"$job"}', "")], instant=True,
            description="mode: what the strategy asks for; applied: what the manager paces by (the mode for "
                        "agent-based handlers; time_based for agent-less and preview handlers).")
    b.panel("timeseries", "Pace per job (attempts per second allowed, granted)", [
        ('sum by (job) (pom_pacing_rate_per_second{job=~"$job"})', "job {{job}} allowed"),
        (f'sum by (job) (rate(pom_pacing_granted_total{{job=~"$job"}}[{RATE}]))', "job {{job}} granted")],
        unit="ops")
    b.panel("timeseries", "Attempts in flight vs concurrency cap per job", [
        ('sum by (job) (pom_pacing_in_flight{job=~"$job"})', "job {{job}} in flight"),
        ('sum by (job) (pom_pacing_max_concurrent{job=~"$job"})', "job {{job}} cap")])
    b.panel("timeseries", "Abandon rate per job (1 h and 24 h windows)", [
        (f'sum by (job) (increase(pom_manager_abandons_total{{job=~"$job"}}[{w}])) / '
         f'sum by (job) (increase(pom_manager_live_answers_total{{job=~"$job"}}[{w}]))', f"job {{{{job}}}} {w}")
        for w in ("1h", "24h")], unit="percentunit",
        description="Abandoned calls over live answers (codes counts_as_abandon / human_contact) settled by the "
                    "job's managers in the window; NaN while nothing was answered.")
    b.panel("timeseries", "Dial level and lines per agent per job", [
        ('sum by (job) (pom_pacing_dial_level{job=~"$job"})', "job {{job}} dials (last decision)"),
        ('sum by (job) (pom_pacing_lines{job=~"$job"}) / sum by (job) (pom_pacing_agents{job=~"$job"})',
         "job {{job}} lines per agent")],
        description="The agent-based pacers' last decisions summed over each job's managers, and the lines they "
                    "hold (in flight, new dials, talking) per agent paced.")
    b.panel("timeseries", "Rule window abandon rate per job (as the pacer counts it)", [
        ('max by (job) (pom_pacing_abandon_rate{job=~"$job"})', "job {{job}}"),
        ('max by (job) (pom_pacing_alarm{job=~"$job"})', "job {{job}} AMD alarm")], unit="percentunit",
        description="The campaign's persisted window (30 days US, 24 h UK, or window_s) with AMD false positives "
                    "where the formula counts them; the alarm is 1 while the false positives alone exceed the "
                    "target and the job does not dial.")
    return b.json()


def load() -> dict:
    b = Board("pom-load", "POM — Load",
              "The load monitors' readings (each POM server's CPU and memory, the database, POM's own load), "
              "the active alarms and the restrictions they impose, and imports.")
    b.row("Alarms and restrictions")
    b.panel("stat", "Active alarms", [("count(pom_alarms_active) or vector(0)", "")], w=6, h=4)
    b.panel("stat", "Dialling pace (load restriction)", [("pom_load_dial_factor", "")], w=6, h=4,
            unit="percentunit")
    b.panel("stat", "New imports", [('pom_load_imports_restriction == 1', "{{mode}}")], w=6, h=4,
            description="allowed, queued or refused (load restrictions).")
    b.panel("stat", "Oldest server sample", [("max(pom_load_sample_age_seconds)", "")], w=6, h=4, unit="s")
    b.row("Servers")
    b.panel("timeseries", "CPU per POM server", [("pom_load_cpu_percent", "{{server}}")], unit="percent")
    b.panel("timeseries", "Memory per POM server", [("pom_load_memory_percent", "{{server}}")], unit="percent")
    b.row("Database")
    b.panel("timeseries", "Sessions", [("pom_load_db_active_sessions", "active"),
                                       ("pom_load_db_idle_sessions", "idle"),
                                       ("pom_load_db_idle_in_transaction_sessions", "idle in transaction")],
            stack=True)
    b.panel("timeseries", "Connections", [("pom_load_db_connections", "connections"),
                                          ("pom_load_db_max_connections", "max_connections")])
    b.panel("timeseries", "Connections, percent of max", [("pom_load_db_connections_percent", "connections")],
            unit="percent")
    b.panel("timeseries", "Long queries; blocked sessions", [("pom_load_db_long_queries", "long queries"),
                                                              ("pom_load_db_blocked_sessions", "blocked")])
    b.row("POM")
    b.panel("timeseries", "Active jobs, agents logged in, imports running", [
        ("pom_load_active_jobs", "active jobs"), ("pom_load_agents_logged_in", "agents logged in"),
        ("pom_load_imports_running", "imports running")], w=24)
    b.row("Imports")
    b.panel("timeseries", "Imports by state", [("sum by (state) (pom_imports)", "{{state}}")], stack=True)
    b.panel("timeseries", "Import rows per second by count", [
        (f"sum by (kind) (rate(pom_import_rows_total[{RATE}]))", "{{kind}}")], unit="ops")
    b.panel("bargauge", "Rows of the imports by state and count", [
        ('sum by (state, kind) (pom_import_rows_by_state)', "{{state}} {{kind}}")], instant=True, w=24)
    return b.json()


DASHBOARDS = {"campaigns.json": campaigns, "agents.json": agents, "system.json": system, "load.json": load}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name, build in DASHBOARDS.items():
        (HERE / name).write_text(render(build))
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
