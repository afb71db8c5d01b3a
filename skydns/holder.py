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
import ipaddress
import os
import socket
import struct
import time
from pathlib import Path

_LISTEN = "0A"  # TCP state in /proc/net/tcp


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
    owners = socket_owners(listening_inodes(proto, port), exclude=os.getpid())
    return owners[0] if owners else None


def listening_inodes(proto: str, port: int, host: str | None = None) -> set[str]:
    """The inodes of the `proto` sockets bound to `port` (TCP: listening), on `host` or a
    wildcard address (any address without `host`), from /proc/net/{proto,proto6}."""
    want = None if host is None else ipaddress.ip_address(host)
    found = set()
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10:
                continue
            addr_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port or (proto == "tcp" and fields[3] != _LISTEN):
                continue  # TCP: the listener, not its connections
            if want is not None:
                addr = _proc_addr(addr_hex)
                if not (addr is None or addr.is_unspecified or addr == want
                        or (addr.version == 6 and addr.ipv4_mapped == want)):
                    continue
            found.add(fields[9])
    found.discard("0")
    return found


def _proc_addr(hex_addr: str):
    """An address as /proc/net prints it: 32-bit words in host (little-endian) order."""
    try:
        raw = bytes.fromhex(hex_addr)
    except ValueError:
        return None
    words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]
    return ipaddress.ip_address(b"".join(words))


def socket_owners(inodes: set[str], exclude: int | None = None) -> list[int]:
    """The pids (but `exclude`) that have one of these socket inodes open, from /proc/*/fd;
    processes of other users are not ours to read and are left out."""
    if not inodes:
        return []
    targets = {f"socket:[{inode}]" for inode in inodes}
    owners = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry.name}/fd/{fd}") in targets:
                    owners.append(int(entry.name))
                    break
    return sorted(owners)
