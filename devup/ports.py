"""Whether the demo's ports are free, and when one is not, who holds it.

A port is tried the way its server will bind it: TCP with SO_REUSEADDR, as etcd, aiohttp,
asyncio and http.server all set it, so the TIME_WAIT connections a demo stopped a moment ago
leaves behind do not count as "in use"; UDP without it (UDP has no TIME_WAIT, and
SO_REUSEADDR would let a UDP bind share a port someone really holds).

The holder comes from skydns/holder.py's /proc reading (the socket's inode in /proc/net, the
process that has it open in /proc/<pid>/fd): what `ss -lptn` prints, without needing ss.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass

from skydns.holder import listening_inodes, socket_owners


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
    inodes = listening_inodes(proto, port, host)
    if not inodes:
        return "no listening socket seen"
    owners = socket_owners(inodes)
    if not owners:
        return "a process of another user"
    return ", ".join(f"pid {pid} ({_command(str(pid))})" for pid in owners)


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
