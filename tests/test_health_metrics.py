"""/metrics of skydns-scanner and skydns-schedule: real processes, a real etcd, scraped over
HTTP on 127.0.0.1 the way Prometheus would."""

from etcdtest import wait_for
from healthtest import (
    HEART,
    LOCK,
    STATUS,
    Daemon,
    Listener,
    closed_port,
    leader,
    listening_tcp_ports,
    reports,
    sample,
    sample_sum,
    scrape,
    status_of,
)

DOWNTIME = 2.0  # healthtest's agent-downtime: how long a killed scanner's addresses wait
SLACK = 8.0  # a busy 2-core machine runs several of these processes at once
IPS = [f"127.0.8.{i}" for i in range(1, 5)]


def alive(*daemons: Daemon) -> bool:
    for daemon in daemons:
        if not daemon.running:
            raise AssertionError(f"{daemon!r} exited:\n{daemon.logs()[-3000:]}")
    return True


def with_metrics(kind, etcd, daemons, hostname):
    addr = f"127.0.0.1:{closed_port()}"
    daemon = daemons(kind, etcd, hostname, General={"metrics-addr": addr})
    daemon.metrics = addr
    return daemon


def scraped(daemon: Daemon):
    """The daemon's metrics once its server answers."""
    return wait_for(lambda: alive(daemon) and scrape(daemon.metrics), timeout=20,
                    message=f"{daemon.hostname} serves /metrics")


def test_scanner_and_scheduler_metrics(etcd, daemons):
    with Listener(IPS[0]) as backend:
        # One address answers; the others refuse (nothing listens on that port there).
        etcd.put_many({STATUS + ip: {"ports": [backend.port]} for ip in IPS})
        scanners = {name: with_metrics("scanner", etcd, daemons, name)
                    for name in ("scan-m1", "scan-m2")}
        schedulers = [with_metrics("schedule", etcd, daemons, "sch-m1")]
        wait_for(lambda: alive(*schedulers) and etcd.get(LOCK + "sch-m1"), timeout=20,
                 message="first scheduler a candidate")
        schedulers.append(with_metrics("schedule", etcd, daemons, "sch-m2"))

        assignment = wait_for(
            lambda: alive(*scanners.values(), *schedulers)
            and (now := reports(etcd)).keys() == set(IPS)
            and set(now.values()) == set(scanners) and now,
            timeout=20, message="every address assigned to the two scanners")

        for name, scanner in scanners.items():
            mine = sum(1 for owner in assignment.values() if owner == name)
            first = scraped(scanner)
            assert sample(first, "skydns_scanner_info", hostname=name,
                          version=_version(first, "skydns_scanner_info")) == 1
            wait_for(lambda s=scanner, n=mine: sample(scrape(s.metrics),
                                                      "skydns_scanner_assigned_ips") == n,
                     timeout=10, message=f"{name} reports {mine} assigned IPs")
            wait_for(lambda s=scanner: sample(scrape(s.metrics), "skydns_scanner_heartbeat_lease")
                     == 1, timeout=10, message=f"{name} reports its lease held")
            # Probing goes on: the counter grows between two scrapes, latency is observed.
            probes = sample_sum(first, "skydns_scanner_probes_total")
            later = wait_for(lambda s=scanner, p=probes: (
                m := scrape(s.metrics)) and sample_sum(m, "skydns_scanner_probes_total") > p
                and m, timeout=10, message=f"{name} probes_total grows")
            assert sample(later, "skydns_scanner_probe_duration_seconds_count", kind="tcp") > 0
            assert sample(later, "skydns_scanner_checks_total") > 0

        # The damped statuses add up over both scanners: one UP, the rest DOWN.
        wait_for(lambda: status_of(etcd, IPS[0]) == "UP"
                 and all(status_of(etcd, ip) == "DOWN" for ip in IPS[1:]), timeout=15,
                 message="statuses written")

        def by_status(status):
            return sum(sample(scrape(s.metrics), "skydns_scanner_addresses", status=status)
                       for s in scanners.values())

        wait_for(lambda: by_status("up") == 1 and by_status("down") == len(IPS) - 1,
                 timeout=10, message="addresses gauge by status")
        writes = sum(sample(scrape(s.metrics), "skydns_scanner_status_writes_total")
                     for s in scanners.values())
        assert writes >= len(IPS)

        # Exactly one scheduler leads, and it is the one etcd says.
        def leaders():
            flags = {s.hostname: sample(scrape(s.metrics), "skydns_scheduler_is_leader")
                     for s in schedulers}
            return flags if sorted(flags.values()) == [0, 1] else None

        flags = wait_for(leaders, timeout=10, message="one scheduler reports is_leader 1")
        lead_name = next(name for name, flag in flags.items() if flag == 1)
        assert lead_name == leader(etcd)
        lead = next(s for s in schedulers if s.hostname == lead_name)
        metrics = scrape(lead.metrics)
        assert sample(metrics, "skydns_scheduler_assignments") == len(IPS)
        assert sample(metrics, "skydns_scheduler_live_scanners") == 2
        assert sample(metrics, "skydns_scheduler_assignment_passes_total") >= 1
        assert sample(metrics, "skydns_scheduler_info", hostname=lead_name,
                      version=_version(metrics, "skydns_scheduler_info")) == 1
        moves = sample(metrics, "skydns_scheduler_moves_total")

        # A scanner dies without revoking anything: once its lease expires, the leader
        # moves its addresses, and counts the moves.
        victim = "scan-m1"
        held = sum(1 for owner in assignment.values() if owner == victim)
        scanners[victim].kill()
        wait_for(lambda: sample(scrape(lead.metrics), "skydns_scheduler_moves_total")
                 >= moves + held, timeout=DOWNTIME + SLACK, message="moves counted")
        assert set(reports(etcd).values()) == {"scan-m2"}
        after = scrape(lead.metrics)
        assert sample(after, "skydns_scheduler_live_scanners") == 1
        assert sample(after, "skydns_scheduler_is_leader") == 1
        wait_for(lambda: sample(scrape(scanners["scan-m2"].metrics),
                                "skydns_scanner_assigned_ips") == len(IPS),
                 timeout=10, message="the survivor reports every address")

        # The listener is the process's own, on the configured port.
        port = int(lead.metrics.rsplit(":", 1)[1])
        assert port in listening_tcp_ports(lead.proc.pid)


def test_no_listener_without_metrics_addr(etcd, daemons):
    scanner = daemons("scanner", etcd, "scan-quiet")
    scheduler = daemons("schedule", etcd, "sch-quiet")
    wait_for(lambda: alive(scanner, scheduler) and etcd.get(HEART + "scan-quiet")
             and "became leader" in scheduler.logs(), timeout=20, message="both running")
    assert listening_tcp_ports(scanner.proc.pid) == set()
    assert listening_tcp_ports(scheduler.proc.pid) == set()


def test_busy_metrics_port_is_logged_not_fatal(etcd, daemons):
    with Listener("127.0.0.1") as taken:
        scanner = daemons("scanner", etcd, "scan-busy",
                          General={"metrics-addr": f"127.0.0.1:{taken.port}"})
        wait_for(lambda: alive(scanner) and etcd.get(HEART + "scan-busy"), timeout=20,
                 message="scanner registered anyway")
        assert "metrics server cannot listen" in scanner.logs()


def _version(samples, name):
    """The version label of an info sample (whatever version is installed)."""
    for (key, labels), _ in samples.items():
        if key == name:
            return dict(labels)["version"]
    raise AssertionError(f"no {name} sample")
