"""Prometheus metrics of skydns-scanner (`[General] metrics-addr`).

Almost everything is read from counters the agent keeps anyway, at scrape time, by a custom
collector: the probe path pays nothing for metrics nobody scrapes. Only the latency
histogram is observed as probes finish, since a histogram cannot be rebuilt from totals.
The collector runs in the HTTP server's thread while the event loop changes the agent's
state; it reads plain ints and copies of containers (see skydns.metrics.snapshot).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from skydns.metrics import package_version, snapshot

from .confirm import DISAGREED
from .damping import DOWN, UP
from .probes import KINDS

PREFIX = "skydns_scanner_"
# Loopback answers in well under a millisecond, a LAN in a few, a silent address only at
# check-timeout (default 2 s; up to 10 s is plausible): ms to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)


class AgentCollector(Collector):
    def __init__(self, agent):
        self.agent = agent
        self.version = package_version()

    def collect(self):
        agent, prober, lease = self.agent, self.agent.prober, self.agent.lease

        def counter(name, doc, value):
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name, doc, value):
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        probes = CounterMetricFamily(
            PREFIX + "probes", "Probes that ran to a verdict: ok (answered; for http/https "
            "checks: a status that expect accepts) or fail (refused, timed out, no echo "
            "reply, wrong status, TLS refused), by kind (icmp, tcp, http, https).",
            labels=["kind", "result"])
        for (kind, ok), count in sorted(dict(prober.outcomes).items()):
            probes.add_metric([kind, "ok" if ok else "fail"], count)
        yield probes
        yield counter("probe_local_errors", "Probes that could not run on this host (no "
                      "socket permission, out of file descriptors, no local port); counted "
                      "neither ok nor fail.", prober.local_errors)
        yield gauge("probes_in_flight", "Probes (sockets) open right now.", prober.in_flight)
        yield gauge("max_concurrency", "[Check] max-concurrency: most probes in flight.",
                    prober.max_concurrency)
        yield counter("checks", "Checks of an address (one round: its ICMP, TCP and "
                      "HTTP(S) probes together).", prober.checks)
        yield counter("check_failures", "Checks that failed: no ICMP/TCP probe got an "
                      "answer, or an HTTP(S) check failed.", prober.unreachable)
        yield counter("round_overruns", "Probe rounds that started late: raise "
                      "max-concurrency or check-interval.", agent.overruns)

        targets = snapshot(lambda: list(agent.targets.values()))
        yield gauge("assigned_ips", "Addresses this scanner probes: assigned to it in report/ "
                    "and monitored (status/<ip> exists).", len(targets))
        by_status = {UP: 0, DOWN: 0, None: 0}
        for target in targets:
            by_status[target.damper.status] += 1
        addresses = GaugeMetricFamily(
            PREFIX + "addresses", "Probed addresses by their damped status (unknown: none "
            "stored in etcd and not yet rise or fall results in a row).", labels=["status"])
        for status, label in ((UP, "up"), (DOWN, "down"), (None, "unknown")):
            addresses.add_metric([label], by_status[status])
        yield addresses
        yield gauge("check_enabled", "[General] enable-check (0: registered but probing "
                    "nothing).", int(agent.enabled))

        yield counter("status_writes", "Status changes written to status/<ip>.",
                      agent.status_writes)
        yield counter("write_conflicts", "Status writes refused because someone else wrote "
                      "the key since it was read (re-read, then retried or yielded).",
                      agent.write_conflicts)
        yield counter("etcd_errors", "Status writes etcd refused or did not answer "
                      "(retried the next round).", agent.write_errors)
        watch = GaugeMetricFamily(PREFIX + "etcd_watch_connected", "1 while the watch of a "
                                  "prefix is connected to etcd.", labels=["prefix"])
        watch.add_metric(["status"], int(agent.status_mirror.connected))
        watch.add_metric(["report"], int(agent.report_mirror.connected))
        watch.add_metric(["heart"], int(agent.confirmer.heart_mirror.connected))
        watch.add_metric(["confirm"], int(agent.confirmer.confirm_mirror.connected))
        yield watch

        confirmer = agent.confirmer
        outcomes = CounterMetricFamily(
            PREFIX + "confirmations", "DOWNs this scanner asked others to confirm, by "
            "outcome: confirmed (written), disagreed (another scanner reached the address: "
            "kept UP), unanswered (nobody answered in time: kept UP, asked again), alone (no "
            "other live scanner: written unconfirmed), aborted (isolated or stopping).",
            labels=["outcome"])
        for outcome, count in sorted(dict(confirmer.outcomes).items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        yield counter("disagreements", "Confirmations where another scanner reached an "
                      "address this one found failing (its DOWN was not written).",
                      confirmer.outcomes[DISAGREED])
        yield counter("confirm_asks", "Scanners asked to confirm (a replacement for one that "
                      "did not answer counts again).", confirmer.asked)
        yield counter("confirm_timeouts", "Scanners asked to confirm that did not answer in "
                      "time (dead, stuck, cut off) and were replaced.", confirmer.timeouts)
        answers = CounterMetricFamily(
            PREFIX + "confirm_answers", "Verdicts this scanner gave on other scanners' "
            "requests: reached (it disagrees) or failed (it confirms).", labels=["result"])
        answered = dict(confirmer.answered)
        answers.add_metric(["reached"], answered[True])
        answers.add_metric(["failed"], answered[False])
        yield answers
        yield gauge("isolated", "1 while this scanner says it is isolated: most of what it "
                    "probes fails here while other scanners reach it; it writes no DOWN and "
                    "its addresses go to the others.", int(agent.isolated))
        yield counter("isolations", "Times this scanner declared itself isolated.",
                      agent.isolations)
        yield gauge("live_peers", "Other live scanners that can confirm a failure (not "
                    "isolated); 0 means DOWNs are written unconfirmed.",
                    len(snapshot(confirmer.others)))

        held = lease.lease_id is not None and lease.granted.is_set()
        yield gauge("heartbeat_lease", "1 while the heartbeat lease (heart/<hostname>) is "
                    "held, 0 while it is lost and being granted again.", int(held))
        yield counter("heartbeat_lease_grants", "Heartbeat leases granted (1 + re-grants).",
                      lease.grants)
        yield counter("heartbeat_lease_losses", "Heartbeat leases lost (expired, or no "
                      "keep-alive answered for a whole TTL).", lease.losses)
        yield InfoMetricFamily(PREFIX.rstrip("_"), "This scanner.",
                               value={"hostname": agent.hostname, "version": self.version})


def registry_for(agent) -> CollectorRegistry:
    """A registry of its own (several agents may share a test process) holding this agent's
    metrics; hooks the latency histogram into its prober."""
    registry = CollectorRegistry()
    latency = Histogram(PREFIX + "probe_duration_seconds", "Time a probe took to its "
                        "verdict (a timeout counts its whole timeout), by kind.",
                        ["kind"], buckets=LATENCY_BUCKETS, registry=registry)
    # Children made up front: both series exist from the first scrape, and observing skips
    # the label lookup.
    children = {kind: latency.labels(kind) for kind in KINDS}
    agent.prober.observe = lambda kind, seconds: children[kind].observe(seconds)
    registry.register(AgentCollector(agent))
    return registry
