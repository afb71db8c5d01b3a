"""A real dnstap collector for tests and the bench: `fstrm_capture` (Debian fstrm-bin) writing
a Frame Streams file, read back with `dnstap-read` (Debian bind9-dnsutils)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import yaml

from etcdtest import wait_for


class Collector:
    """fstrm_capture listening on a unix socket (default) or 127.0.0.1:`tcp_port`."""

    def __init__(self, directory: Path | None = None, tcp_port: int = 0):
        self.dir = Path(directory or tempfile.mkdtemp(prefix="skydns-dnstap-"))
        self.socket = self.dir / "dnstap.sock"
        self.tcp_port = tcp_port
        self.proc: subprocess.Popen | None = None
        self.files: list[Path] = []

    @property
    def target(self) -> str:
        """The [Log] dnstap value that reaches it."""
        return f"tcp:127.0.0.1:{self.tcp_port}" if self.tcp_port else f"unix:{self.socket}"

    def start(self, output: Path | None = None) -> Collector:
        output = output or self.dir / f"out-{len(self.files)}.fstrm"
        self.files.append(output)
        where = (["-a", "127.0.0.1", "-p", str(self.tcp_port)] if self.tcp_port
                 else ["-u", str(self.socket)])
        with open(self.dir / "fstrm_capture.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["fstrm_capture", "-t", "protobuf:dnstap.Dnstap", *where, "-w", str(output)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self._listening, timeout=10, interval=0.02,
                 message=f"fstrm_capture not listening: {self.log()}")
        return self

    def _listening(self) -> bool:
        assert self.proc.poll() is None, f"fstrm_capture exited: {self.log()}"
        if not self.tcp_port:
            return self.socket.exists()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.tcp_port)) == 0

    def log(self) -> str:
        path = self.dir / "fstrm_capture.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> Path:
        """Stop it the way an operator does (it closes the file properly); the file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        return self.files[-1]

    def kill(self) -> None:
        """A crash: no FINISH, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.tcp_port and self.socket.exists():
            os.unlink(self.socket)  # what its next start would do itself


def read_lines(path: Path) -> list[str]:
    """`dnstap-read FILE`: one line per message (time, type, addresses, protocol, question)."""
    out = subprocess.run(["dnstap-read", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def read_messages(path: Path) -> list[dict]:
    """`dnstap-read -y FILE`: every message in full, as YAML documents."""
    out = subprocess.run(["dnstap-read", "-y", str(path)], capture_output=True, text=True,
                         check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def wait_until(predicate, timeout: float = 20.0, message: str = ""):
    return wait_for(predicate, timeout=timeout, interval=0.05, message=message)


