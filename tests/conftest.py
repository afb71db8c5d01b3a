import pytest

from etcdtest import EtcdServer
from healthtest import Daemon
from kafkatest import KafkaBroker


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory):
    """One real etcd for the whole run (its log stays in pytest's basetemp/etcd*/)."""
    server = EtcdServer(tmp_path_factory.mktemp("etcd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def etcd(etcd_server):
    """The shared etcd, running and with nothing under /skydns."""
    etcd_server.ensure_running()  # an earlier test may have stopped or paused it
    etcd_server.delete_prefix("/skydns")
    return etcd_server


@pytest.fixture
def daemons():
    """daemons(kind, etcd, hostname, **config) starts a scanner or scheduler process; all of
    them are killed at the end (no graceful stop: a test that wants one stops it itself)."""
    started: list[Daemon] = []

    def start(kind, etcd, hostname, **overrides) -> Daemon:
        daemon = Daemon(kind, etcd.endpoint, hostname, **overrides).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()
    for daemon in started:
        daemon.close()


@pytest.fixture(scope="session")
def kafka_broker():
    """One Kafka-protocol broker (Tansu, in memory) for the run; tests use topics of their own."""
    broker = KafkaBroker().start()
    yield broker
    broker.stop()
