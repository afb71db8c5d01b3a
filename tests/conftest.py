import importlib.util
import os
from pathlib import Path

import pytest

from etcdtest import EtcdServer
from healthtest import Daemon
from kafkatest import KafkaBroker

CLOCKSHIFT = Path(__file__).resolve().parent / "clockshift"


def pytest_addoption(parser):
    parser.addoption(
        "--monotonic-origin", metavar="SECONDS", type=float, default=None,
        help="start time.monotonic() near SECONDS, in the tests and in every Python process "
        "they start (0: a machine that has just booted); see tests/clockshift/")


def pytest_configure(config):
    origin = config.getoption("monotonic_origin")
    if origin is None:
        return
    # Children: site.py imports tests/clockshift/sitecustomize.py, which reads the variable.
    os.environ["SKYDNS_TEST_MONOTONIC_ORIGIN"] = repr(origin)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLOCKSHIFT), path]))
    # This process: the same file, loaded under another name (a `sitecustomize` of the
    # system may already be imported here).
    spec = importlib.util.spec_from_file_location("_clockshift",
                                                  CLOCKSHIFT / "sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


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
