"""Every expression of every Grafana panel (and every template variable's query) names only
metrics the gateway's collector exports, with the sample-name suffix of its type; and the
dashboards' JSON is what dashboards/build.py writes."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from api.metrics import exported_families

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
BOARDS = sorted(DASHBOARDS.glob("*.json"))

# PromQL words that can stand where a metric name does (followed by a space or a bracket).
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "atan2", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio", "inf", "nan",
}
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count"), "info": ("_info",), "stateset": ("",), "unknown": ("",)}
IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def exported_samples() -> set[str]:
    """Sample names a scrape can carry: each family's name with the suffixes of its type."""
    return {name + suffix for name, kind in exported_families().items() for suffix in SUFFIXES[kind]}


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: identifiers followed by `{`, `[`, whitespace,
    `)` or the end, once strings, label matchers, ranges and grouping label lists are
    blanked and PromQL's own words are set aside. Any `pom_` word is counted as well."""
    e = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    e = re.sub(r"\{[^}]*\}", "{}", e)
    e = re.sub(r"\[[^\]]*\]", "[]", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", e)
    found = set(re.findall(rf"(?<![\w:$.]){IDENT}(?=[{{\[\s)]|$)", e)) - KEYWORDS
    return found | set(re.findall(r"(?<![\w:$])pom_[a-zA-Z0-9_:]*", e))


def expressions(board: dict) -> list[tuple[str, str]]:
    """(where, expression) of every panel target, nested panels included, and every query
    variable (`label_values(metric, label)` is read as its metric)."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((f"panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))

    walk(board.get("panels", []))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(rf"label_values\(\s*({IDENT}(?:\{{[^}}]*\}})?)\s*,\s*({IDENT})\s*\)", query)
            out.append((f"variable {var['name']}", m.group(1) if m else query))
    return out


def test_there_are_dashboards_with_expressions():
    assert {p.name for p in BOARDS} >= {"campaigns.json", "agents.json", "system.json", "load.json"}
    for path in BOARDS:
        assert expressions(json.loads(path.read_text())), path.name


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_every_expression_names_only_exported_metrics(path):
    exported = exported_samples()
    board = json.loads(path.read_text())
    used = set()
    for where, expr in expressions(board):
        names = metric_names(expr)
        assert names, f"{path.name} {where}: no metric in {expr!r}"
        missing = names - exported
        assert not missing, f"{path.name} {where}: {sorted(missing)} not exported ({expr!r})"
        used |= names
    assert all(n.startswith("pom_") for n in used)


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_every_panel_queries_the_chosen_data_source(path):
    board = json.loads(path.read_text())
    assert any(v["name"] == "datasource" and v["type"] == "datasource" for v in board["templating"]["list"])
    for p in board["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_the_checker_catches_unknown_names_and_wrong_suffixes():
    exported = exported_samples()
    assert "pom_attempts_total" in exported and "pom_attempts" not in exported   # a counter's sample
    assert "pom_jobs" in exported and "pom_jobs_total" not in exported           # a gauge's
    assert metric_names('sum by (code) (rate(pom_attempts_total{channel="call"}[$__rate_interval]))') == \
        {"pom_attempts_total"}
    assert metric_names("count(pom_actor_up == 0) or vector(0)") == {"pom_actor_up"}
    assert metric_names("sum by (job) (a{state=\"done\"}) / ignoring(state) b") == {"a", "b"}
    for bad in ("rate(pom_attempts[5m])", "pom_jobs_total", "sum(rate(pom_nope_total[1m]))",
                "rate(up{job=\"pom-gateway\"}[1m])", "histogram_quantile(0.9, pom_x_bucket)"):
        assert metric_names(bad) - exported, bad


def test_the_json_is_what_build_writes():
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, make in build.DASHBOARDS.items():
        assert (DASHBOARDS / name).read_text() == build.render(make), f"run python dashboards/build.py ({name})"
