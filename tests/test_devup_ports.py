"""devup/ports.py: a port in TIME_WAIT is free for the demo's servers (they bind with
SO_REUSEADDR, as the check now does), and a port really held names its process."""

from __future__ import annotations

import os
import socket

from devup.ports import Wanted, bindable, holder, taken


def _time_wait_port() -> int:
    """A port whose listener is gone, left with a connection in TIME_WAIT on the server side
    (the server closed first, as an HTTP server does after its answer)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server side closes first: TIME_WAIT is on its port
    client.recv(1)
    client.close()
    listener.close()
    return port


def test_time_wait_is_not_in_use():
    port = _time_wait_port()
    with socket.socket() as plain:  # the old check: no SO_REUSEADDR
        try:
            plain.bind(("127.0.0.1", port))
            old_check_refused = False
        except OSError:
            old_check_refused = True
    assert old_check_refused, "no TIME_WAIT left: the test proves nothing"
    assert bindable("127.0.0.1", port) is None
    assert taken([Wanted("127.0.0.1", port, "--api-port")]) == []


def test_a_held_port_names_its_process():
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", 0))
        uport = udp.getsockname()[1]
        assert holder("127.0.0.1", port).startswith(f"pid {os.getpid()} (")
        lines = taken([Wanted("127.0.0.1", port, "--api-port"),
                       Wanted("127.0.0.1", uport, "--dns-port", socket.SOCK_DGRAM)])
    assert lines[0].startswith(f"127.0.0.1:{port}/tcp held by pid {os.getpid()} (")
    assert lines[0].endswith("; pass --api-port")
    assert lines[1].startswith(f"127.0.0.1:{uport}/udp held by pid {os.getpid()} (")


def test_a_wildcard_listener_holds_loopback_too():
    with socket.socket() as tcp:
        tcp.bind(("0.0.0.0", 0))
        tcp.listen()
        port = tcp.getsockname()[1]
        assert f"pid {os.getpid()} " in holder("127.0.0.1", port)
