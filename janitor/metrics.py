"""Prometheus metrics of skydns-janitor (`[Janitor] metrics-addr`), labelled by recursor URL.

Lag is the time from the janitor seeing a change (the etcd watch event) to the recursor
confirming the purge of a name it reached: the part of the DOWN-to-out-of-answers delay that
the janitor adds (bench/janitor_bench.py measures the whole of it).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from skydns.metrics import package_version

PREFIX = "skydns_janitor_"
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class JanitorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Info(PREFIX + "build", "Version of skydns-janitor.", registry=r).info(
            {"version": package_version()})
        self.purges = Counter(PREFIX + "purges", "Names purged from a recursor's cache "
                              "(one API call each).", ["recursor"], registry=r)
        self.failures = Counter(PREFIX + "purge_failures", "Purge calls that failed (network, "
                                "timeout, HTTP error); network failures are retried.",
                                ["recursor"], registry=r)
        self.lag = Histogram(PREFIX + "purge_lag_seconds", "From the etcd change seen to the "
                             "recursor's purge done, per name.", ["recursor"],
                             buckets=LAG_BUCKETS, registry=r)
        self.pending = Gauge(PREFIX + "pending_names", "Names waiting to be purged.",
                             ["recursor"], registry=r)
        self.up = Gauge(PREFIX + "recursor_up", "1 while the last purge round to the "
                        "recursor succeeded.", ["recursor"], registry=r)
        self.changes = Counter(PREFIX + "changes", "Changes seen in etcd that reached "
                               "at least one name.", ["kind"], registry=r)
        self.names = Counter(PREFIX + "names_reached", "Names (and subtrees) those changes "
                             "reached, before coalescing.", registry=r)

    def purged(self, recursor: str, lag: float | None) -> None:
        self.purges.labels(recursor).inc()
        if lag is not None:
            self.lag.labels(recursor).observe(lag)

    def recursor(self, url: str) -> None:
        """Make the recursor's series exist (at 0) before its first purge."""
        for metric in (self.purges, self.failures, self.lag, self.pending):
            metric.labels(url)
        self.up.labels(url).set(1)

    def forget(self, url: str) -> None:
        for metric in (self.purges, self.failures, self.lag, self.pending, self.up):
            try:
                metric.remove(url)
            except KeyError:
                pass
