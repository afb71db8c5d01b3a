"""sd_notify: skydns-kubeapi tells a notify socket READY=1 once it listens, STOPPING=1 on
SIGTERM (its systemd unit is Type=notify)."""

from __future__ import annotations

import socket

from apitest import KubeApi


def test_ready_and_stopping_sent(etcd, tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        monkeypatch.setenv("NOTIFY_SOCKET", path)  # this test only
        api = KubeApi(etcd.endpoint).start(wait_ready=False)
        try:
            message = sock.recv(4096).decode().split("\n")
            assert "READY=1" in message
            assert any(line.startswith("STATUS=serving skydns.local.") for line in message)
            assert api.ready()  # READY came only once the port answers
        finally:
            assert api.stop() == 0
        assert "STOPPING=1" in sock.recv(4096).decode().split("\n")
