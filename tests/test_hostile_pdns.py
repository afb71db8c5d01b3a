"""The PowerDNS backend against floods (issue 18): case variants of one name must not grow
its lookup memo, and a burst of connects while it is busy must not be refused."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket

import pytest
from test_hostile_dns import rss_kb

from pdnstest import Backend


@pytest.fixture
def backend(etcd):
    etcd.put("/skydns/test/example/api/i1", {"host": "10.0.0.1"})
    be = Backend(etcd.endpoint, Log={"log-level": "info"}).start()
    yield be
    be.cleanup()


def _variants(name: str, count: int):
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    for n in range(count):
        chars = list(name)
        for bit, i in enumerate(letters):
            if n >> bit & 1:
                chars[i] = chars[i].upper()
        yield "".join(chars)


def test_case_variants_share_one_memo_entry(backend):
    name = "api.example.test."  # 13 letters: 8192 spellings
    with backend.client() as client:
        client.call("lookup", qname=name, qtype="ANY")
        before = rss_kb(backend.proc.pid)
        spellings = list(_variants(name, 8192)) * 3
        for start in range(0, len(spellings), 500):
            batch = spellings[start : start + 500]
            client.send_raw(b"".join(
                json.dumps({"method": "lookup", "parameters": {"qname": q, "qtype": "ANY"}})
                .encode() + b"\n" for q in batch))
            for q in batch:
                reply = client.reply()
                # each answer carries the spelling asked for, from the one memo entry
                assert {r["qname"] for r in reply["result"]} == {q}, reply
        grown = rss_kb(backend.proc.pid) - before
    assert grown < 8_000, grown  # one entry per spelling held ~2 KB each: +50 MB for 24k
    assert "Traceback" not in backend.logs()


def test_burst_of_connects_while_busy_is_not_refused(backend):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    socks, refused = [], 0
    os.kill(backend.proc.pid, signal.SIGSTOP)  # busy: nothing is accepted meanwhile
    try:
        for _ in range(1000):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(str(backend.socket))
            except (BlockingIOError, ConnectionRefusedError):
                refused += 1
                sock.close()
                continue
            socks.append(sock)
    finally:
        os.kill(backend.proc.pid, signal.SIGCONT)
    try:
        assert refused == 0, refused  # a backlog of 100 refused 900 of these
        last = socks[-1]
        last.setblocking(True)
        last.settimeout(5)
        last.sendall(b'{"method": "initialize", "parameters": {}}\n')
        assert json.loads(last.recv(65536)) == {"result": True}
    finally:
        for sock in socks:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
