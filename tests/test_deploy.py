"""deploy/ and compose.yaml hang together: the files parse, every file they mount or name exists,
Prometheus's token is the API's, and every metric an alert or a dashboard panel reads is one the
service exports (a renamed metric would otherwise leave a silent panel and an alert that never fires)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import Counter, Gauge, Histogram

from config import metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# Computed at scrape time (services.operations.MetricsCollector) and Prometheus's own.
SCRAPE_TIME = {
    "claimlane_queue_depth",
    "claimlane_queue_oldest_age_seconds",
    "claimlane_sla_open",
    "claimlane_webhook_messages_failed",
    "claimlane_metrics_collect_ok",
}


def exported() -> set[str]:
    names = set(SCRAPE_TIME)
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names.add(value._name + "_total")
        elif isinstance(value, Histogram):
            names.update(value._name + suffix for suffix in ("_bucket", "_sum", "_count"))
        elif isinstance(value, Gauge):
            names.add(value._name)
    return names


def _alerts() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())


def _referenced(expr: str) -> set[str]:
    return set(re.findall(r"\bclaimlane_[a-z0-9_]+", expr))


def test_alert_rules_read_only_exported_metrics_and_recorded_series() -> None:
    known = exported()
    recorded = {r["record"] for g in _alerts()["groups"] for r in g["rules"] if "record" in r}
    alerts = [r for g in _alerts()["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} >= {
        "ClaimLaneSlaOverdue",
        "ClaimLaneSlaAtRisk",
        "ClaimLaneFastLaneShareShift",
        "ClaimLaneConfidenceShift",
        "ClaimLaneHigh5xxRate",
    }
    for rule in (r for g in _alerts()["groups"] for r in g["rules"]):
        unknown = _referenced(rule["expr"]) - known
        assert not unknown, (rule.get("alert") or rule.get("record"), unknown)
        for name in re.findall(r"\bclaimlane:[a-z0-9_:]+", rule["expr"]):
            assert name in recorded, name
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]


def test_the_dashboard_reads_only_exported_metrics() -> None:
    known = exported()
    recorded = {r["record"] for g in _alerts()["groups"] for r in g["rules"] if "record" in r}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "claimlane.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    for expr in exprs:
        assert not _referenced(expr) - known, expr
        assert set(re.findall(r"\bclaimlane:[a-z0-9_:]+", expr)) <= recorded, expr
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("fast-lane", "payouts", "reviews by reason", "deadline", "confidence", "latency", "queue"):
        assert topic in titles, topic


def test_compose_wires_prometheus_and_grafana_to_deploy() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        for mount in services[name]["volumes"]:
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), mount
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    assert jobs["claimlane-api"]["static_configs"][0]["targets"] == ["api:8000"]
    token_file = jobs["claimlane-api"]["authorization"]["credentials_file"].replace(
        "/etc/prometheus", "deploy/prometheus"
    )
    token = (ROOT / token_file).read_text().strip()
    assert compose["x-claimlane-env"]["CLAIMLANE_METRICS_TOKEN"] == "${METRICS_TOKEN:-" + token + "}"
    worker_env = services["worker"]["environment"]
    port = jobs["claimlane-worker"]["static_configs"][0]["targets"][0].split(":")[1]
    assert worker_env["CLAIMLANE_WORKER_METRICS_PORT"] == port and worker_env["PROMETHEUS_MULTIPROC_DIR"]
    for path in ("datasources/prometheus.yml", "dashboards/claimlane.yml"):
        assert yaml.safe_load((DEPLOY / "grafana" / "provisioning" / path).read_text())["apiVersion"] == 1
