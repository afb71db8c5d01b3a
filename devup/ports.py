"""Whether the demo's ports are free, and when one is not, who holds it.

A port is tried the way its server will bind it: TCP with SO_REUSEADDR, as etcd, aiohttp,
asyncio and http.server all set it, so the TIME_WAIT connections a demo stopped a moment ago
leaves behind do not count as "in use"; UDP without it (UDP has no TIME_WAIT, and
SO_REUSEADDR would let a UDP bind share a port someone really holds).

The holder comes from /proc/net/{tcp,tcp6,udp,udp6} (the socket's inode) and /proc/<pid>/fd
(which process has that inode open): what `ss -lptn` prints, without needing ss.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from dataclasses import dataclass

_LISTEN = "0A"  # TCP state in /proc/net/tcp


@dataclass(frozen=True)
class Wanted:
    host: str
    port: int
    option: str  # the flag that moves it
    kind: int = socket.SOCK_STREAM

    @property
    def proto(self) -> str:
        return "udp" if self.kind == socket.SOCK_DGRAM else "tcp"


def bindable(host: str, port: int, kind: int = socket.SOCK_STREAM) -> OSError | None:
    """None when `host:port` can be bound as its server binds it, else the error."""
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            return err
    return None


def _inodes(proto: str, host: str, port: int) -> set[str]:
    """Inodes of the sockets bound to `port` on `host` or a wildcard address (TCP: listening)."""
    want = ipaddress.ip_address(host)
    found = set()
    for table in (proto, proto + "6"):
        try:
            with open(f"/proc/net/{table}") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10:
                continue
            addr_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port or (proto == "tcp" and fields[3] != _LISTEN):
                continue
            addr = _proc_addr(addr_hex)
            if addr is None or addr.is_unspecified or addr == want or (
                    addr.version == 6 and addr.ipv4_mapped == want):
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


def _owners(inodes: set[str]) -> list[tuple[int, str]]:
    targets = {f"socket:[{inode}]" for inode in inodes}
    owners = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry.name}/fd/{fd}") in targets:
                    owners.append((int(entry.name), _command(entry.name)))
                    break
            except OSError:
                continue
    return sorted(owners)


def _command(pid: str) -> str:
    """The command line of `pid`, shortened: `python3 -m dnsserver --config-file ...`."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    words = [os.path.basename(args[0].decode(errors="replace"))]
    words += [a.decode(errors="replace") for a in args[1:]]
    text = " ".join(words)
    return text if len(text) <= 60 else text[:57] + "..."


def holder(host: str, port: int, kind: int = socket.SOCK_STREAM) -> str:
    """Who holds `host:port`: 'pid 1234 (etcd)', or what can be said without seeing it."""
    proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    inodes = _inodes(proto, host, port)
    if not inodes:
        return "no listening socket seen"
    owners = _owners(inodes)
    if not owners:
        return "a process of another user"
    return ", ".join(f"pid {pid} ({name})" for pid, name in owners)


def taken(wanted: list[Wanted]) -> list[str]:
    """'127.0.0.1:9001/tcp held by pid 1234 (python3); pass --api-port' for each port that
    cannot be bound."""
    out = []
    for want in wanted:
        err = bindable(want.host, want.port, want.kind)
        if err is None:
            continue
        if err.errno == errno.EADDRINUSE:
            why = f"held by {holder(want.host, want.port, want.kind)}"
        else:
            why = err.strerror or str(err)
        out.append(f"{want.host}:{want.port}/{want.proto} {why}; pass {want.option}")
    return out
