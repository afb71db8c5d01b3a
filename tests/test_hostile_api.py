"""skydns-kubeapi against slow and vanishing clients (issue 18, items 4 and 6): a request head
or body that trickles in is cut off at the read timeout, and a client that closes mid-body is
logged as such, not as a 500 with a traceback."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from test_hostile_dns import rss_kb

from apitest import ADMIN_TOKEN, KubeApi
from etcdtest import wait_for


@pytest.fixture
def api(etcd):
    srv = KubeApi(etcd.endpoint, SkydnsApi={"read-timeout": 1.0}).start()
    yield srv
    srv.stop()


def _healthy(api) -> bool:
    async def get():
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"http://{api.addr}/skydns/api",
                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
                return resp.status

    try:
        return asyncio.run(get()) == 200
    except (aiohttp.ClientError, OSError):
        return False


def _closed(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_trickled_heads_are_closed_at_the_deadline(api):
    before = rss_kb(api.proc.pid)
    socks = []
    for _ in range(200):  # half-requests: a slowloris holds these forever without a deadline
        sock = socket.create_connection(("127.0.0.1", api.port), timeout=3)
        sock.sendall(b"GET /skydns/api HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    trickle = socket.create_connection(("127.0.0.1", api.port), timeout=3)
    head = b"GET /skydns/api HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    start = time.monotonic()
    closed = False
    for byte in head:  # a byte every 0.2 s: 12 s for the head, deadline 1 s
        try:
            trickle.send(bytes((byte,)))
        except OSError:
            closed = True
            break
        if _closed(trickle, 0.2):
            closed = True
            break
    assert closed and time.monotonic() - start < 5.0
    for sock in socks:
        assert _closed(sock, 5.0)
        sock.close()
    trickle.close()
    assert _healthy(api)
    assert rss_kb(api.proc.pid) - before < 20_000
    assert "Traceback" not in api.logs()


def _post_head(length: int) -> bytes:
    return (f"POST /skydns/api/web HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def test_slow_body_gets_408(api):
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        sock.sendall(_post_head(1000) + b'{"type": "A", ')
        start = time.monotonic()
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert time.monotonic() - start < 4.0
    assert _healthy(api)


def test_client_closing_mid_body_is_not_a_500(api):
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
            sock.sendall(_post_head(1000) + b'{"type": "A", "ips": [')
            time.sleep(0.05)  # let the handler start reading the body
    wait_for(lambda: api.logs().count("status=499") + api.logs().count('"status": 499') >= 1,
             timeout=5, message=api.logs()[-2000:])
    logs = api.logs()
    assert "Traceback" not in logs and "request failed" not in logs
    assert "status=500" not in logs and '"status": 500' not in logs
    assert _healthy(api)


def test_keys_that_are_not_utf8_are_left_out_of_listings(etcd):
    from skydns import store

    from etcdtest import run_async

    async def put():
        client = store.make_client(etcd.etcd_section())
        try:
            for key, ip in ((b"bad\xff", b"10.1.0.4"), (b"nul\x00", b"10.1.0.5")):
                await client.put(b"/skydns/local/skydns/" + key + b"/x",
                                 b'{"host": "' + ip + b'", "type": "A"}')
        finally:
            await client.close()

    run_async(put())
    etcd.put("/skydns/local/skydns/good/x", {"host": "10.1.0.6", "type": "A"})
    srv = KubeApi(etcd.endpoint).start()
    try:
        status, text = srv.request("GET", "/skydns/api")
        assert status == 200 and "good" in text and "10.1.0.4" not in text \
            and "10.1.0.5" not in text, text
        assert "etcd key skipped" in srv.logs() and "Traceback" not in srv.logs()
    finally:
        srv.stop()


def _connect(srv, source="127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=3,
                                    source_address=(source, 0))


def _healthz(sock: socket.socket) -> bool:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock.recv(65536).startswith(b"HTTP/1.1 200")


def _event_stream(srv, source: str) -> socket.socket:
    """A connection busy with a request that lasts: the status page's event stream."""
    sock = _connect(srv, source)
    sock.sendall(f"GET /skydns/status/events?token={ADMIN_TOKEN} HTTP/1.1\r\n"
                 "Host: x\r\n\r\n".encode())
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    return sock


def test_connection_caps_close_the_idle_longest(etcd):
    """At a cap the connection idle longest (between requests) gives way to the new one; a
    new one is refused only when every connection it could replace is busy."""
    srv = KubeApi(etcd.endpoint, SkydnsApi={"max-per-client": 3, "max-connections": 6}).start()
    socks = []
    try:
        idle = [_connect(srv) for _ in range(3)]
        socks += idle
        fresh = _connect(srv)  # a fourth from the same address: the oldest idle one goes
        socks.append(fresh)
        assert _healthz(fresh)
        assert _closed(idle[0], 3.0) and not _closed(idle[1], 0.1)
        streams = [_event_stream(srv, "127.0.0.2") for _ in range(3)]  # six held in all
        socks += streams
        extra = _connect(srv, "127.0.0.2")  # its own three are busy: refused
        socks.append(extra)
        assert _closed(extra, 3.0)
        other = _connect(srv, "127.0.0.3")  # the total cap: anyone's idle-longest goes
        socks.append(other)
        assert _healthz(other)
        assert _closed(idle[1], 3.0) and not _closed(idle[2], 0.1)
        assert not any(_closed(s, 0.1) for s in streams)
        for sock in socks:
            sock.close()
        socks.clear()
        wait_for(lambda: _healthy(srv), timeout=5)  # slots come back when connections close
        assert "Traceback" not in srv.logs()
    finally:
        for sock in socks:
            sock.close()
        srv.stop()
