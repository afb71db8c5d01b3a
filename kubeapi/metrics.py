"""Prometheus metrics of the API, served at GET /metrics on the API's own address.

One CollectorRegistry per app (tests run several apps in one process). Request counters are
prometheus-client metrics updated by the HTTP middleware; the etcd and status-feed numbers
stay plain attributes of their owners (EtcdStore, RecordService, StatusFeed), read at scrape
time by a collector, so those modules need not know about Prometheus.

    skydns_api_requests_total{method,route,code}
    skydns_api_request_duration_seconds{method,route}    (histogram; not the event stream)
    skydns_api_etcd_errors_total{call,code}              failed etcd calls, by gRPC code
    skydns_api_etcd_retries_total                        etcd calls retried after a failure
    skydns_api_txn_conflicts_total                       commits refused by their guards
    skydns_api_status_clients                            open status event streams
    skydns_api_status_watch_connected{source}            1 while that status mirror watches
    skydns_kube_services / skydns_kube_endpoints         known from the Kubernetes API
    skydns_kube_services_synced_total                    services converged in etcd
    skydns_kube_etcd_ops_total                           keys put or deleted by the sync
    skydns_kube_watch_restarts_total / _relists_total    watches ended and resumed / lists
    skydns_kube_errors_total{kind}                       api, etcd, foreign (name of another owner)
    skydns_kube_last_sync_timestamp_seconds              when every change was last written
    skydns_kube_watch_connected                          1 while every watch runs
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Anything else a client sends as a method is counted as "other": label values must come
# from a small fixed set, whatever the clients do.
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}
UNMATCHED = "unmatched"  # the route label of requests no route matched (404s)
STREAM_ROUTE = "/skydns/status/events"


class _Sources:
    """Reads the plain counters of the API's parts at scrape time."""

    def __init__(self, store=None, service=None, feed=None, kube=None):
        self.store, self.service, self.feed, self.kube = store, service, feed, kube

    def describe(self):
        return []  # computed at scrape time; nothing to check at registration

    def collect(self):
        if self.store is not None:
            errors = CounterMetricFamily("skydns_api_etcd_errors", "Failed etcd calls",
                                         labels=["call", "code"])
            for (call, code), count in sorted(self.store.errors.items()):
                errors.add_metric([call, code], count)
            yield errors
            yield CounterMetricFamily("skydns_api_etcd_retries",
                                      "etcd calls retried after a transient failure",
                                      value=self.store.retries)
        if self.service is not None:
            yield CounterMetricFamily("skydns_api_txn_conflicts",
                                      "Commits refused by their guards (planned again)",
                                      value=self.service.conflicts)
        if self.feed is not None:
            yield GaugeMetricFamily("skydns_api_status_clients",
                                    "Open status page event streams", value=self.feed.clients)
            watch = GaugeMetricFamily("skydns_api_status_watch_connected",
                                      "1 while the status page's mirror of that prefix watches",
                                      labels=["source"])
            for source, mirror in self.feed.mirrors.items():
                watch.add_metric([source], 1 if mirror.connected else 0)
            yield watch
        if self.kube is not None:
            yield from _kube_metrics(self.kube)


def _kube_metrics(stats):
    services, endpoints = stats.known()
    yield GaugeMetricFamily("skydns_kube_services", "Services known from the Kubernetes API",
                            value=services)
    yield GaugeMetricFamily("skydns_kube_endpoints",
                            "Ready endpoint addresses known from the Kubernetes API",
                            value=endpoints)
    yield CounterMetricFamily("skydns_kube_services_synced", "Services converged in etcd",
                              value=stats.synced)
    yield CounterMetricFamily("skydns_kube_etcd_ops", "etcd keys put or deleted by the sync",
                              value=stats.etcd_ops)
    yield CounterMetricFamily("skydns_kube_watch_restarts", "Watches ended and resumed",
                              value=stats.watch_restarts)
    yield CounterMetricFamily("skydns_kube_relists", "Full lists (start, 410 Gone)",
                              value=stats.relists)
    errors = CounterMetricFamily("skydns_kube_errors", "Sync errors by kind", labels=["kind"])
    for kind, count in sorted(stats.errors.items()):
        errors.add_metric([kind], count)
    yield errors
    yield GaugeMetricFamily("skydns_kube_last_sync_timestamp_seconds",
                            "Unix time every known change was last written to etcd",
                            value=stats.last_sync)
    yield GaugeMetricFamily("skydns_kube_watch_connected", "1 while every watch runs",
                            value=1 if stats.connected else 0)


class ApiMetrics:
    def __init__(self, store=None, service=None, feed=None, kube=None):
        self.registry = CollectorRegistry()
        self.requests = Counter("skydns_api_requests", "HTTP requests answered",
                                ["method", "route", "code"], registry=self.registry)
        self.duration = Histogram("skydns_api_request_duration_seconds",
                                  "Time to answer an HTTP request", ["method", "route"],
                                  registry=self.registry)
        self.registry.register(_Sources(store, service, feed, kube))

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(code)).inc()
        if route != STREAM_ROUTE:  # a stream lasts as long as the browser tab: not a latency
            self.duration.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", ApiMetrics)
