"""The child processes of `skydns up`: started, watched, and stopped in order with a deadline.

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches only `skydns up`,
which then stops them tier by tier (SIGTERM, then SIGKILL of the whole process group when the
deadline passes, which also takes any worker the child forked). Each child also gets
PR_SET_PDEATHSIG: should `skydns up` itself be killed outright, the kernel stops its children.
An exit is noticed at once through a pidfd, not by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .pdeathsig import tie_to as _tie_to


@dataclass(eq=False)
class Child:
    name: str
    log: Path
    tier: int  # stop order: lower tiers stop first
    proc: subprocess.Popen
    exited: asyncio.Future = field(repr=False)
    argv: list[str] | None = None  # how to start it again; None: started elsewhere
    started: float = field(default_factory=time.monotonic)
    restart_delay: float = 0.0  # the delay before this start, 0 for the first one

    @property
    def pid(self) -> int:
        return self.proc.pid

    def describe_exit(self) -> str:
        code = self.proc.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"code {code}"
        return f"{self.name} (pid {self.pid}) exited with {how}; see {self.log}"


FIRST_RESTART = 5.0  # long enough to watch the failover a killed scanner or leader causes
MAX_RESTART = 60.0
STABLE = 30.0  # a child that ran this long before exiting starts over at FIRST_RESTART


def restart_delay(previous: float, ran_for: float) -> float:
    """Seconds to wait before starting an exited child again: doubled while it keeps exiting
    soon after each start, so a component that cannot run does not spin."""
    if previous <= 0 or ran_for >= STABLE:
        return FIRST_RESTART
    return min(previous * 2, MAX_RESTART)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs; zombies waiting for whoever adopted them
    (in a container, maybe nobody) do not count."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class ProcessSet:
    def __init__(self, on_exit: Callable[[Child], None], grace: float = 10.0):
        self.children: list[Child] = []
        self.stopping = False
        self.grace = grace
        self._on_exit = on_exit

    def spawn(self, name: str, argv: list[str], log: Path, tier: int) -> Child:
        with open(log, "ab") as out:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"--- skydns up: {name} started {stamp} ---\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_tie_to(os.getpid()),
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self.adopt(name, proc, log, tier, argv)

    def respawn(self, old: Child, delay: float) -> Child:
        """Start an exited child again, as it was started; it replaces `old` in the set."""
        self.children.remove(old)
        child = self.spawn(old.name, old.argv, old.log, old.tier)
        child.restart_delay = delay
        return child

    def adopt(self, name: str, proc: subprocess.Popen, log: Path, tier: int,
              argv: list[str] | None = None) -> Child:
        """Take care of a process started elsewhere (it must be a session leader too)."""
        loop = asyncio.get_running_loop()
        child = Child(name, log, tier, proc, loop.create_future(), argv)
        self.children.append(child)
        try:
            fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # kernels before 5.3: look twice a second instead
            self._poll(child)
            return child

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._reaped(child)

        loop.add_reader(fd, exited)
        return child

    def _poll(self, child: Child) -> None:
        if child.proc.poll() is None:
            asyncio.get_running_loop().call_later(0.5, self._poll, child)
        else:
            self._reaped(child)

    def _reaped(self, child: Child) -> None:
        child.proc.wait()  # it has exited: this only collects the status
        if not child.exited.done():
            child.exited.set_result(child.proc.returncode)
        if not self.stopping:
            self._on_exit(child)

    async def stop(self, tiers: Iterable[int] | None = None) -> list[str]:
        """Stop the children of `tiers` (all when None), lowest tier first; returns complaints
        about children that had to be killed."""
        self.stopping = True
        wanted = set(tiers) if tiers is not None else {c.tier for c in self.children}
        complaints: list[str] = []
        for tier in sorted(wanted):
            group = [c for c in self.children if c.tier == tier]
            for child in group:
                if child.proc.returncode is None:
                    child.proc.send_signal(signal.SIGTERM)
            complaints += await self._await_exit(group)
        return complaints

    async def _await_exit(self, group: list[Child]) -> list[str]:
        complaints = []
        pending = [c.exited for c in group if not c.exited.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.grace)
        for child in group:
            if not child.exited.done():
                complaints.append(f"{child.name} (pid {child.pid}) ignored SIGTERM for "
                                  f"{self.grace:g}s; killed")
                _kill_group(child.pid)
        pending = [c.exited for c in group if not c.exited.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        # Workers the child forked share its process group and may outlive it.
        deadline = time.monotonic() + 5
        for child in group:
            while _group_alive(child.pid) and time.monotonic() < deadline:
                _kill_group(child.pid)
                await asyncio.sleep(0.05)
            if _group_alive(child.pid):
                complaints.append(f"processes of {child.name}'s group {child.pid} are left")
        return complaints
