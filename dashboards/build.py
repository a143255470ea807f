"""Writes the Grafana dashboards of POM (campaigns.json, system.json) beside this file.

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


DASHBOARDS = {"campaigns.json": campaigns, "system.json": system}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name, build in DASHBOARDS.items():
        (HERE / name).write_text(render(build))
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
