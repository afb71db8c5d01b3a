"""Prometheus metrics of skydns-schedule (`[General] metrics-addr`).

A custom collector reads the counters the scheduler keeps anyway, at scrape time. It runs
in the HTTP server's thread while the event loop changes the mirrors; it reads plain ints
and copies of containers (see skydns.metrics.snapshot).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from skydns.metrics import package_version, snapshot

PREFIX = "skydns_scheduler_"


class SchedulerCollector(Collector):
    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.version = package_version()

    def collect(self):
        sched = self.scheduler
        assigner, elector = sched.assigner, sched.elector

        def counter(name, doc, value):
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name, doc, value):
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        yield gauge("is_leader", "1 while this scheduler leads (writes report/), 0 while it "
                    "stands by.", int(sched.is_leader))
        monitored = snapshot(lambda: list(assigner.monitored))
        reports = snapshot(lambda: dict(assigner.reports))
        owned = sum(1 for ip in monitored if reports.get(ip, ("", 0))[0])
        # Standbys mirror the same keys, so these three agree on every scheduler.
        yield gauge("assignments", "Monitored addresses assigned to a scanner in report/.",
                    owned)
        yield gauge("monitored_ips", "Monitored addresses (keys under status/).",
                    len(monitored))
        yield gauge("live_scanners", "Live scanners (keys under heart/) that take work: "
                    "not isolated.", len(snapshot(lambda: list(assigner.scanners))))
        yield gauge("isolated_scanners", "Live scanners that say they are isolated (they "
                    "cannot reach what they probe; their addresses go to the others).",
                    len(snapshot(lambda: list(assigner.isolated))))
        yield counter("moves", "Addresses this scheduler moved from one scanner to another.",
                      assigner.moves)
        yield counter("assignment_passes", "Assignment passes run while leading.",
                      assigner.passes)
        yield counter("report_writes", "report/<ip> values written (new or changed owner).",
                      assigner.assignments)
        yield counter("report_removals", "report/<ip> keys deleted (address no longer "
                      "monitored).", assigner.removals)
        yield counter("write_errors", "Assignment passes that failed on an etcd error "
                      "(retried with backoff).", assigner.write_errors)
        yield counter("leader_terms", "Times this scheduler was elected.", elector.terms)
        lease = elector.lease
        held = lease.lease_id is not None and lease.granted.is_set()
        yield gauge("lock_lease", "1 while the candidate's lease (lock/<hostname>) is held.",
                    int(held))
        yield counter("lock_lease_losses", "Leases lost (expired, or no keep-alive answered for "
                      "a whole TTL).", lease.losses)
        watch = GaugeMetricFamily(PREFIX + "etcd_watch_connected", "1 while the watch of a "
                                  "prefix is connected to etcd.", labels=["prefix"])
        for mirror in assigner.mirrors:  # named scheduler-heart, -status, -report
            watch.add_metric([mirror.name.removeprefix("scheduler-")], int(mirror.connected))
        yield watch
        yield InfoMetricFamily(PREFIX.rstrip("_"), "This scheduler.",
                               value={"hostname": sched.hostname, "version": self.version})


def registry_for(scheduler) -> CollectorRegistry:
    """A registry of its own (several schedulers may share a test process)."""
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(scheduler))
    return registry
