"""Prometheus metrics of skydns-pdns-backend (`[Pdns] metrics-addr`).

Read from what the server keeps anyway, at scrape time (the scrape runs in the HTTP server's
thread; it reads ints and a copy of the request counts, see skydns.metrics.snapshot).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from skydns.metrics import package_version, snapshot

PREFIX = "skydns_pdns_"


class PdnsCollector(Collector):
    def __init__(self, server):
        self.server = server
        self.version = package_version()

    def collect(self):
        server = self.server
        requests = CounterMetricFamily(
            PREFIX + "requests", "Remote backend requests by method and result (fail: the "
            "reply was result false: bad request, unknown method, records not loaded).",
            labels=["method", "result"])
        for (method, result), count in sorted(snapshot(lambda: dict(server.backend.counts))
                                              .items()):
            requests.add_metric([method, result], count)
        yield requests
        yield GaugeMetricFamily(PREFIX + "connections", "Open connections from pdns_server.",
                                value=len(server.connections))
        yield GaugeMetricFamily(PREFIX + "records", "Records in the in-memory copy of etcd.",
                                value=len(server.state.index))
        yield GaugeMetricFamily(PREFIX + "etcd_loaded", "1 once the first full etcd load is "
                                "in (before it, data requests fail).",
                                value=1 if server.state.ready else 0)
        yield CounterMetricFamily(PREFIX + "bad_records", "etcd values skipped as not valid "
                                  "JSON or not a valid record.", value=server.sync.bad_records)
        info = InfoMetricFamily(PREFIX + "build", "skydns-pdns-backend version and zone.")
        info.add_metric([], {"version": self.version, "zone": server.state.zone.domain})
        yield info


def registry_for(server) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PdnsCollector(server))
    return registry
