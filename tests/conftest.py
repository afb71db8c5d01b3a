import pytest

from etcdtest import EtcdServer


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
