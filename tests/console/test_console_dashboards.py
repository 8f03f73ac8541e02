"""docs/grafana-dashboard.json and docs/prometheus-alerts.yml load, and every expression in
them names only metrics that exist.

The known names come from what is really exported: a registry holding the console's collector,
collected against a real system database; plus, once the engine exports worker-side metrics
(``waymark_workflows_started_total``... a later change), the names of the registry that
``engine.metrics.registry()`` returns, so the dashboard and rules can use those too.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from django.db import connections
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

import tests.console.console_site as site
from console import metrics
from engine import Client

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Series Prometheus itself makes for every scrape target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    # aggregation operators: their grouping clause may stand between them and "("
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
}


def series_names(family: Metric) -> set[str]:
    """The series names a family is queried by (a counter's ``_total``, a histogram's
    ``_bucket``/``_sum``/``_count``), from its samples or, without samples, its type."""
    if family.samples:
        return {sample.name for sample in family.samples}
    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_sum", "_count"],
        "summary": ["_sum", "_count", ""],
    }
    return {family.name + s for s in suffixes.get(family.type, [""])}


def engine_registry() -> CollectorRegistry | None:
    try:
        module = importlib.import_module("engine.metrics")
    except ImportError:
        return None  # the worker-side metrics are not there yet
    made: CollectorRegistry = module.registry()
    return made


@pytest.fixture
def exported(tmp_path) -> set[str]:
    url = f"sqlite:///{tmp_path / 'waymark.sqlite3'}"
    with Client(url) as client:
        client.list_workflows(limit=1)  # the system tables exist

    class Db:
        backend, schema = "sqlite", "waymark"

    Db.url = url  # type: ignore[attr-defined]
    site.point_engine_database(Db)
    try:
        names: set[str] = set()
        for family in metrics.registry().collect():  # the console collector, really run
            names |= series_names(family)
        found = engine_registry()
        if found is not None:
            for family in found.collect():
                names |= series_names(family)
        return names
    finally:
        connections["waymark"].close()


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (enough PromQL for dashboards and rules:
    strings, label matchers, ranges, grouping clauses and functions are not names)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings ($queue, regexes)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr
    )  # grouping labels
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue  # a function, or an operator
        names.add(name)
    return names


def test_the_extractor_finds_names_and_only_names() -> None:
    assert metric_names(
        'sum by (queue) (rate(waymark_x_total{queue=~"$queue", a="b"}[5m])) '
        "/ on (queue) group_left clamp_min(waymark_y, 1) > 0.5 and absent(waymark_z) or vector(0)"
    ) == {"waymark_x_total", "waymark_y", "waymark_z"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(a_bucket[5m])))") == {
        "a_bucket"
    }
    assert metric_names("x offset 5m > bool 1e3") == {"x"}


def dashboard_expressions() -> list[str]:
    board = json.loads((DOCS / "grafana-dashboard.json").read_text())
    found = []

    def walk(panels: list[dict]) -> None:
        for panel in panels:
            found.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(board["panels"])
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        labels = re.fullmatch(r"label_values\((\w+),\s*\w+\)", text)
        if labels:
            found.append(labels.group(1))
    return found


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    found = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule
            assert rule["annotations"]["summary"], rule
            found.append(rule["expr"])
    return found


def test_the_dashboard_loads_and_is_grafana_shaped() -> None:
    board = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"


def test_every_expression_names_only_exported_metrics(exported) -> None:
    assert "waymark_workflows" in exported  # the registry really was collected
    assert "waymark_queue_oldest_enqueued_age_seconds" in exported
    known = exported | PROMETHEUS_SERIES
    used: set[str] = set()
    for where, expressions in (
        ("docs/grafana-dashboard.json", dashboard_expressions()),
        ("docs/prometheus-alerts.yml", rule_expressions()),
    ):
        assert expressions, where
        for expr in expressions:
            names = metric_names(expr)
            assert names, (where, expr)
            unknown = names - known
            assert not unknown, f"{where}: {expr!r} names {sorted(unknown)}, not exported"
            used |= names
    # Every console gauge is on the dashboard or in a rule (nothing exported goes unseen).
    assert set(metrics.GAUGES) <= used
