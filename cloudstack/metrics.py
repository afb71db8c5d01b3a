"""Prometheus metrics of skydns-cloudstack (`[General] metrics-addr`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

from skydns.metrics import package_version

PREFIX = "skydns_cloudstack_"


class CloudStackMetrics:
    def __init__(self, lag=lambda: {}, etcd_ops=lambda: 0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Info(PREFIX + "build", "Version of skydns-cloudstack.", registry=r).info(
            {"version": package_version()})
        self.events = Counter(PREFIX + "events", "Bus messages handled, by event kind "
                              "(VM.CREATE, ..., other, invalid) and outcome (written, "
                              "unchanged, removed, missing, ignored, failed).", ["kind", "outcome"],
                              registry=r)
        self.errors = Counter(PREFIX + "errors", "Failures, by kind: api (CloudStack API "
                              "unreachable or refusing; retried), etcd (retried), commit "
                              "(offset commit failed; redelivered), foreign (a name held by "
                              "another owner), zone (a zone outside [General] domain), "
                              "internal.", ["kind"], registry=r)
        self.resyncs = Counter(PREFIX + "resyncs", "Resyncs finished (every VM listed and "
                               "converged).", registry=r)
        self.resync_changes = Counter(PREFIX + "resync_changes", "VMs a resync wrote or "
                                      "removed (events it found missed).", ["change"],
                                      registry=r)
        self.last_resync = Gauge(PREFIX + "last_resync_timestamp_seconds", "Unix time the "
                                 "last resync finished.", registry=r)
        self.retries = Counter(PREFIX + "retries", "Events tried again after a failure "
                               "(never skipped).", registry=r)
        self.etcd_ops = Gauge(PREFIX + "etcd_operations", "Puts and deletes committed "
                              "since the start.", registry=r)
        self.etcd_ops.set_function(etcd_ops)
        lag_gauge = Gauge(PREFIX + "lag_messages", "Messages published but not yet "
                          "committed, by partition (after the last fetch).", ["partition"],
                          registry=r)
        self._lag = lag
        self._lag_gauge = lag_gauge

    def update_lag(self) -> None:
        for partition, lag in self._lag().items():
            self._lag_gauge.labels(str(partition)).set(lag)
