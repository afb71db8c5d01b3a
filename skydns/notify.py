"""systemd's readiness protocol (sd_notify) without libsystemd: one datagram to NOTIFY_SOCKET.

Units use Type=notify, so systemd starts dependent units only once a daemon says READY=1
(for skydns: etcd loaded and the port bound), and knows a stop is under way on STOPPING=1.
Outside systemd NOTIFY_SOCKET is unset and this does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(*fields: str) -> bool:
    """Send e.g. notify("READY=1", "STATUS=serving"); True if a notify socket took it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
        return True
    except OSError:
        return False


def ready(status: str = "") -> bool:
    return notify("READY=1", f"STATUS={status}") if status else notify("READY=1")


def stopping() -> bool:
    return notify("STOPPING=1")
