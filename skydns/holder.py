"""One server per address: claim an address before serving it, and name who holds it if not.

SO_REUSEPORT lets the workers of one `skydns` share the DNS port, but it would let a second
`skydns` of the same user (another config file, same dns-addr) join the port too and take
half of the queries. So a server first claims its address with `AddressLock`: an abstract
unix socket named after it (`@skydns:dns:127.0.0.1:53`), held by the one process that
supervises the workers. The kernel releases it when that process dies, however it dies (no
file to clean up after a crash), it works for any user, and it is per network namespace,
as ports are. A second server finds the name taken and asks the socket who listens on it
(SO_PEERCRED: the holder's pid, whatever its user).

A port held by something else (another program, an older skydns, a wildcard address that
overlaps) is found by `check_free`: a bind without SO_REUSEPORT fails where anyone is bound;
`port_holder` then looks for the pid in /proc (readable for processes of the same user).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import time
from pathlib import Path


class AddressBusy(Exception):
    """The address is held by another process; the message says which (`describe`)."""


def describe(pid: int | None) -> str:
    """`pid 1234 (skydns --config-file /etc/skydns/a.conf)`, or what can be said of it."""
    if pid is None:
        return "another process (pid unknown)"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    cmd = " ".join(a.decode(errors="replace") for a in argv if a)
    return f"pid {pid} ({cmd[:200]})" if cmd else f"pid {pid}"


class AddressLock:
    """An abstract unix socket named after what is served; held until closed or death."""

    def __init__(self, what: str):
        self.name = "\0skydns:" + what
        self.sock: socket.socket | None = None

    def claim(self) -> AddressLock:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not inherited by workers
        try:
            sock.bind(self.name)
            sock.listen(16)
        except OSError as err:
            sock.close()
            if err.errno != errno.EADDRINUSE:
                raise
            raise AddressBusy(describe(self.holder())) from None
        sock.setblocking(False)
        self.sock = sock
        return self

    def holder(self) -> int | None:
        """The pid listening on the name (SO_PEERCRED), or None."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            probe.connect(self.name)
            return peer_pid(probe)
        except OSError:
            return None
        finally:
            probe.close()

    def drain(self) -> None:
        """Accept and drop the connections of servers that asked who we are (so they keep
        finding room in the backlog). Call now and then; it never blocks."""
        if self.sock is None:
            return
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def peer_pid(sock: socket.socket) -> int | None:
    """The pid of the process that listens at the other end of a connected unix socket."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", creds)[0] or None


def check_free(host: str, port: int, udp: bool = True, tcp: bool = True,
               wait: float = 0.0) -> None:
    """Raise AddressBusy when anything is bound to host:port (UDP) or listens on it (TCP).

    The binds carry no SO_REUSEPORT, so they conflict with every socket there, reuseport or
    not, wildcard or not; the TCP one carries SO_REUSEADDR as the server's own does, so old
    connections in TIME_WAIT do not count. `wait`: keep trying this long (the workers of a
    server that was just killed are still stopping)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + wait
    while True:
        busy = None
        for kind, wanted in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)):
            if not wanted:
                continue
            with socket.socket(family, kind) as sock:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError as err:
                    if err.errno != errno.EADDRINUSE:
                        raise
                    busy = "udp" if kind == socket.SOCK_DGRAM else "tcp"
                    break
        if busy is None:
            return
        if time.monotonic() >= deadline:
            raise AddressBusy(describe(port_holder(busy, port)))
        time.sleep(0.1)


def port_holder(proto: str, port: int) -> int | None:
    """The pid of a process with a `proto` socket bound to `port` (any address: a wildcard
    overlaps), from /proc/net and /proc/*/fd; None when not found or not ours to read."""
    inodes = set()
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if int(local.rsplit(":", 1)[1], 16) != port or inode == "0":
                    continue
                if proto == "tcp" and state != "0A":  # LISTEN only, not its connections
                    continue
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None
