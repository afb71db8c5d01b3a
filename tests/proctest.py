"""A component under test as a child process: `python -m <module> --config-file <conf> ...`,
its output in a log file in a temp dir, stopped with SIGTERM (SIGKILL after a deadline)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from etcdtest import wait_for

ROOT = Path(__file__).resolve().parent.parent


class Process:
    module = ""  # python -m <module>
    what = "process"  # for messages

    def __init__(self, prefix: str, log_name: str):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        # Removed at exit, not in stop(): a failing test still reads the log after stopping.
        atexit.register(shutil.rmtree, self.dir, ignore_errors=True)
        self.log = self.dir / log_name
        self.config: Path | None = None
        self.proc: subprocess.Popen | None = None

    def args(self) -> list[str]:
        """Command-line arguments after --config-file."""
        return []

    def command(self) -> list[str]:
        """What to run: `python -m <module> --config-file <config> <args>`, or another
        program's command line (a peer such as pdns_recursor)."""
        return [sys.executable, "-m", self.module, "--config-file", str(self.config),
                *self.args()]

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, wait_ready: bool = True, **env: str):
        """Start the process; env adds variables (e.g. NOTIFY_SOCKET)."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            )
        # A test that fails before its stop() must not leave the process running.
        atexit.register(self.stop)
        if wait_ready:
            wait_for(self.ready, timeout=20,
                     message=f"{self.what} did not come up: {self.logs()}")
        return self

    def assert_running(self) -> None:
        assert self.proc.poll() is None, f"{self.what} exited: {self.logs()}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def children(pid: int) -> set[int]:
    """The pids whose parent is `pid`, from /proc (Linux, like SO_REUSEPORT workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found
