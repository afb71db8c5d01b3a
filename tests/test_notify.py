"""sd_notify: skydns tells a notify socket READY=1 once serving and STOPPING=1 on the way out."""

from __future__ import annotations

import contextlib
import os
import socket

from dnstest import Skydns, free_port


def test_ready_and_stopping_sent(etcd, tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        monkeypatch.setenv("NOTIFY_SOCKET", path)  # this test only
        srv = Skydns(etcd.endpoint).start(wait_ready=False)
        try:
            message = sock.recv(4096).decode()
            assert "READY=1" in message.split("\n")
            assert srv.ready()  # READY came only once the zone answers
        finally:
            srv.stop()
        assert "STOPPING=1" in sock.recv(4096).decode()


def test_pdns_backend_notifies(etcd, tmp_path):
    import subprocess
    import sys

    from dnstest import ROOT, write_config

    conf = write_config(tmp_path / "skydns.conf", etcd.endpoint, free_port())
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pdnsbackend", "--config-file", str(conf),
             "--socket", str(tmp_path / "pdns.sock")],
            env={**os.environ, "NOTIFY_SOCKET": path}, cwd=ROOT)
        try:
            assert "READY=1" in sock.recv(4096).decode().split("\n")
            assert (tmp_path / "pdns.sock").exists()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        assert "STOPPING=1" in sock.recv(4096).decode()


def test_no_ready_when_the_port_cannot_be_bound(etcd, tmp_path, monkeypatch):
    """systemd must see a failed start, not READY=1 followed by an exit."""
    path = str(tmp_path / "notify.sock")
    with (socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
          socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken):
        sock.bind(path)
        taken.bind(("127.0.0.1", 0))
        srv = Skydns(etcd.endpoint)
        srv.port = taken.getsockname()[1]
        srv.config.write_text(srv.config.read_text().replace(
            "dns-addr = 127.0.0.1:", f"dns-addr = 127.0.0.1:{srv.port}  # was "))
        monkeypatch.setenv("NOTIFY_SOCKET", path)  # this test only
        srv.start(wait_ready=False)
        assert srv.proc.wait(timeout=20) != 0
        sock.setblocking(False)
        messages = []
        with contextlib.suppress(BlockingIOError):
            while True:
                messages.extend(sock.recv(4096).decode().split("\n"))
        assert "READY=1" not in messages, messages
