"""A probe round never blocks the heartbeat (issue 5).

A real scanner (the Agent in-process, on an event loop in a thread) against a real etcd,
probing 1,000 addresses on 127.0.0.0/8 whose TCP connects hang for the whole check-timeout,
which is longer than the heartbeat lease's TTL: every probe slot stays taken and the queue
behind them stays full for several rounds. The heartbeat key must stay, on the same lease,
the whole time.
"""

import errno
import json
import random
import resource
import socket
import time

import pytest

from scanner.agent import Agent
from scanner.metrics import registry_for

from etcdtest import wait_for
from healthtest import HEART, REPORT, STATUS, InThread, closed_port, load

HOST = "scan-hb"
ADDRESSES = 1000
MAX_CONCURRENCY = 500  # half the addresses: probes also queue behind the hanging ones
CHECK_TIMEOUT = 3.0  # how long each hanging connect holds its slot ...
AGENT_DOWNTIME = 1.5  # ... longer than the lease's TTL (2 s, whole seconds rounded up)
HEARTBEAT = 0.3
WAVES = 2  # watch at least this many full check-timeouts of probes timing out


def _connected(sock: socket.socket) -> bool:
    # getpeername works only once the handshake is done (ENOTCONN while in SYN_SENT). Not
    # select(): these descriptors can be above FD_SETSIZE.
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


class WedgedBackends:
    """One TCP port P on many loopback addresses where every connect hangs: on each ip a
    listener that never accepts, listen(0), its accept queue filled by one connection of
    ours, so the kernel drops every further SYN (a wedged backend, not a down one: no RST).

    A listener per address rather than one on 0.0.0.0, so that nothing listens beyond
    loopback.
    """

    def __init__(self, ips: list[str]):
        self.ips = ips
        self.port = 0
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> "WedgedBackends":
        try:
            self._listen()
            fillers = []
            for ip in self.ips:
                filler = socket.socket()
                self.sockets.append(filler)
                filler.setblocking(False)
                filler.connect_ex((ip, self.port))
                fillers.append(filler)
            wait_for(lambda: all(_connected(f) for f in fillers), timeout=10,
                     message="one connection in every listener's accept queue")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _listen(self) -> None:
        for _ in range(20):  # the same port on every address: retry if one has it already
            port = closed_port(self.ips[0])
            listeners = []
            try:
                for ip in self.ips:
                    server = socket.socket()
                    listeners.append(server)
                    server.bind((ip, port))
                    server.listen(0)  # room for one connection: the filler's
            except OSError as exc:
                for server in listeners:
                    server.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self.port = port
            self.sockets += listeners
            return
        raise AssertionError("no port free on all the addresses")

    def __exit__(self, *exc) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def heart(etcd) -> tuple[int, int, int, int] | None:
    """(lease, create revision, mod revision, version) of our heartbeat key; None if absent.
    A key deleted (its lease expired) and put again has a new create revision."""
    out = json.loads(etcd.etcdctl("get", "-w", "json", "--", HEART + HOST))
    kvs = out.get("kvs") or []
    if not kvs:
        return None
    kv = kvs[0]
    return (int(kv["lease"]), int(kv["create_revision"]), int(kv["mod_revision"]),
            int(kv.get("version", 0)))


@pytest.fixture
def enough_files():
    """Two sockets per address plus the probes': more than a default soft limit of 1024."""
    need = 2 * ADDRESSES + MAX_CONCURRENCY + 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_hanging_probe_rounds_never_block_the_heartbeat(etcd, tmp_path, enough_files):
    second = random.randrange(64, 250)  # away from the 127.0.0.x other tests use
    ips = [f"127.{second}.{i // 250}.{i % 250 + 1}" for i in range(ADDRESSES)]
    config = load("scanner", etcd.endpoint, HOST, tmp_path,
                  General={"heartbeat-interval": HEARTBEAT, "agent-downtime": AGENT_DOWNTIME},
                  Check={"check-interval": 1.0, "check-timeout": CHECK_TIMEOUT,
                         "enable-icmp": False, "max-concurrency": MAX_CONCURRENCY})
    assert config["Check"]["check-timeout"] > config["General"]["agent-downtime"]
    registries = []

    def make_agent() -> Agent:
        agent = Agent(config)
        registries.append(registry_for(agent))  # as __main__ does: the latency histogram
        return agent

    with WedgedBackends(ips) as backends:
        etcd.put_many([(STATUS + ip, {"ports": [backends.port]}) for ip in ips]
                      + [(REPORT + ip, {"hostname": HOST, "updatetime": "2024-01-01T00:00:00Z"})
                         for ip in ips])
        with InThread(make_agent) as inst:
            agent = inst.obj
            held = wait_for(lambda: heart(etcd), timeout=15, message="heartbeat registered")
            # Load: every slot taken by a connect that hangs, the rest of the round queued.
            wait_for(lambda: agent.prober.in_flight == MAX_CONCURRENCY, timeout=15,
                     message=f"{MAX_CONCURRENCY} probes in flight")
            assert agent.assigned_ips == ADDRESSES

            refreshes = agent.lease.refreshes
            timed_out = agent.prober.outcomes[("tcp", False)]
            start = time.monotonic()
            deadline = start + 20
            peak = 0
            polls = 0
            # Until WAVES whole slot-fulls of probes have hung to their timeout (each wave a
            # check-timeout longer than the lease's TTL), with a look at etcd every ~50 ms.
            while (time.monotonic() - start < WAVES * CHECK_TIMEOUT
                   or agent.prober.outcomes[("tcp", False)] - timed_out
                   < WAVES * MAX_CONCURRENCY):
                assert time.monotonic() < deadline, (
                    f"probes did not time out in {WAVES} waves within 20 s: "
                    f"{agent.prober.outcomes}")
                peak = max(peak, agent.prober.in_flight)
                now = heart(etcd)
                assert now == held, f"heartbeat key changed or vanished: {held} -> {now}"
                assert agent.lease.losses == 0
                polls += 1
                time.sleep(0.05)

            async def final():  # read on the agent's own loop: nothing changes meanwhile
                registry = registries[0]

                def value(name, **labels):
                    return registry.get_sample_value("skydns_scanner_" + name, labels)

                return {
                    "losses": value("heartbeat_lease_losses_total"),
                    "grants": value("heartbeat_lease_grants_total"),
                    "lease": value("heartbeat_lease"),
                    "tcp_ok": value("probes_total", kind="tcp", result="ok"),
                    "tcp_fail": value("probes_total", kind="tcp", result="fail"),
                    "local_errors": value("probe_local_errors_total"),
                    "fast": value("probe_duration_seconds_bucket", kind="tcp", le="2.5"),
                    "timed": value("probe_duration_seconds_count", kind="tcp"),
                    "refreshes": agent.lease.refreshes,
                }

            metrics = inst.call(final)
            assert heart(etcd) == held
    print(f"watched {time.monotonic() - start:.1f}s, {polls} looks at etcd, "
          f"peak in flight {peak}, {metrics}")

    # The heartbeat: never re-granted, never lost, kept alive all along.
    assert (metrics["losses"], metrics["grants"], metrics["lease"]) == (0, 1, 1)
    assert metrics["refreshes"] > refreshes
    # The load was there: every slot busy, and every probe that ended had hung for its whole
    # timeout (nothing answered, nothing refused, nothing failed locally).
    assert peak == MAX_CONCURRENCY
    assert metrics["tcp_ok"] == 0 and metrics["local_errors"] == 0
    assert metrics["fast"] == 0
    assert metrics["timed"] == metrics["tcp_fail"] >= WAVES * MAX_CONCURRENCY
    assert polls >= 10, f"only {polls} looks at the heartbeat key"
