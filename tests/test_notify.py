"""sd_notify: skydns tells a notify socket READY=1 once serving and STOPPING=1 on the way out."""

from __future__ import annotations

import os
import socket

from dnstest import Skydns, free_port


def test_ready_and_stopping_sent(etcd, tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        os.environ["NOTIFY_SOCKET"] = path
        try:
            srv = Skydns(etcd.endpoint).start(wait_ready=False)
        finally:
            del os.environ["NOTIFY_SOCKET"]
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
            [sys.executable, "-m", "dnsserver.pdns", "--config-file", str(conf),
             "--socket", str(tmp_path / "pdns.sock")],
            env={**os.environ, "NOTIFY_SOCKET": path}, cwd=ROOT)
        try:
            assert "READY=1" in sock.recv(4096).decode().split("\n")
            assert (tmp_path / "pdns.sock").exists()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        assert "STOPPING=1" in sock.recv(4096).decode()
