"""contrib/: the Grafana dashboard and the Prometheus alert rules. promtool loads the rules
(and every dashboard query, as recording rules), and every metric either names must be one
the programs export: the names are collected from the programs' own collectors, so renaming
a metric fails here until the dashboard and the rules follow."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess

import pytest
import yaml

from dnstest import ROOT

RULES = ROOT / "contrib" / "prometheus" / "skydns-rules.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "skydns.json"
METRIC = re.compile(r"\bskydns_[a-z0-9_]+\b")
# what a family of each type is exposed as (prometheus-client's text format)
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "unknown": ("",)}

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool (Debian: prometheus) not installed")


def exported(tmp_path) -> set[str]:
    """Every sample name the programs' /metrics can show, from their real collectors."""

    async def collect():
        from prometheus_client import CollectorRegistry

        from dnsserver.front.stats import StatsBook
        from dnsserver.front.stats import _Collector as DnsCollector
        from janitor.metrics import JanitorMetrics
        from kubeapi.__main__ import request_deadline
        from kubeapi.etcd import EtcdStore
        from kubeapi.kubesync import SyncStats
        from kubeapi.metrics import ApiMetrics
        from kubeapi.plan import Layout
        from kubeapi.service import RecordService
        from kubeapi.statusfeed import StatusFeed
        from pdnsbackend.metrics import registry_for as pdns_registry
        from pdnsbackend.server import PdnsServer
        from scanner.agent import Agent
        from scanner.metrics import registry_for as scanner_registry
        from scheduler.loop import Scheduler
        from scheduler.metrics import registry_for as scheduler_registry
        from skydns.config import load_config

        dns = CollectorRegistry()
        dns.register(DnsCollector(StatsBook(tmp_path)))
        api = load_config(None, "api")
        etcd, zone = api["Etcd"], api["General"]["domain"]
        store = EtcdStore(etcd)
        service = RecordService(store, Layout(zone, etcd["status-path"], etcd["refs-path"]),
                                request_deadline(etcd))
        registries = [
            dns,
            ApiMetrics(store, service, StatusFeed(etcd, zone), kube=SyncStats()).registry,
            scanner_registry(Agent(load_config(None, "scanner"))),
            scheduler_registry(Scheduler(load_config(None, "schedule"))),
            pdns_registry(PdnsServer(load_config(None, "dns"), str(tmp_path / "p.sock"), 0o600)),
            JanitorMetrics().registry,
        ]
        return {family.name + suffix for registry in registries
                for family in registry.collect() for suffix in SUFFIXES[family.type]}

    return asyncio.run(collect())


def rule_exprs() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_the_collected_names_are_the_exported_ones(tmp_path):
    names = exported(tmp_path)
    # a few known ones, one per program, so that an empty or broken collection cannot pass
    for name in ("skydns_requests_total", "skydns_dnstap_dropped_total",
                 "skydns_miss_duration_seconds_bucket", "skydns_scanner_checks_total",
                 "skydns_scheduler_is_leader", "skydns_api_requests_total",
                 "skydns_kube_last_sync_timestamp_seconds", "skydns_pdns_etcd_loaded",
                 "skydns_janitor_purges_total"):
        assert name in names


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_metric_named_is_exported(tmp_path, source):
    exprs = rule_exprs() if source == "rules" else dashboard_exprs()
    assert exprs
    names = exported(tmp_path)
    unknown = sorted({name for expr in exprs for name in METRIC.findall(expr)} - names)
    assert not unknown, f"{source} name metrics no program exports: {unknown}"


@needs_promtool
def test_promtool_loads_the_rules():
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path):
    """Each panel's query as a recording rule: promtool parses it ($__rate_interval, which
    Grafana fills in, as 5m)."""
    rules = [{"record": f"skydns:dashboard_{n}", "expr": expr.replace("$__rate_interval", "5m")}
             for n, expr in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_shape():
    dash = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource"]
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    titles = {panel["title"] for panel in dash["panels"]}
    for wanted in ("Answers by rcode", "Cache hit ratio", "Miss latency", "DOWN addresses",
                   "Status flips", "Checks and failures", "Scheduler leader",
                   "API requests by code", "API errors", "Kubernetes sync lag",
                   "Janitor purges", "dnstap"):
        assert wanted in titles
