"""TCP under connection pressure (RFC 7766 6.2.3, 6.1.2): at `tcp-max-per-client` or
`tcp-max-connections` the connection idle longest is closed to admit the new one; one in the
middle of a reply (a slow reader) is not idle; only when every held connection is busy is a
new one refused."""

from __future__ import annotations

import socket
import struct

import dns.message
import dns.rcode
from hostile import query
from test_hostile_dns import _closed_by_server, _framed, _read_message, _recv_exact, start

from etcdtest import wait_for

BIG = "big.example.test."
TEXT = "x" * 40_000  # a 40 KB TXT reply: far more than a 4 KB receive buffer holds


def connect(srv, source="127.0.0.1", rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:  # before connect: the window is agreed in the handshake
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", srv.port))
    return sock


def closed(sock: socket.socket) -> bool:
    """The server closed it (EOF or reset), without waiting."""
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(timeout)


def ask(sock: socket.socket, name="h.example.test.", rdtype=1, qid=7) -> dns.message.Message:
    sock.sendall(_framed(query(name, rdtype, qid=qid)))
    reply = dns.message.from_wire(_read_message(sock))
    assert reply.id == qid and reply.rcode() == dns.rcode.NOERROR
    return reply


def stalled_reader(srv, source="127.0.0.1") -> socket.socket:
    """A client that asked for the big TXT and reads nothing: its reply is mid-way."""
    sock = connect(srv, source, rcvbuf=4096)
    sock.sendall(_framed(query(BIG, 16, qid=99)))
    wait_for(lambda: _inq(sock) > 0, timeout=5, message="no reply started")
    return sock


def finish_reading(sock: socket.socket) -> None:
    """The whole big reply comes, then the connection still answers: it was never closed."""
    sock.settimeout(5)
    reply = dns.message.from_wire(_read_message(sock))
    assert reply.id == 99 and b"".join(reply.answer[0][0].strings) == TEXT.encode()
    assert ask(sock, qid=100).answer


def _inq(sock: socket.socket) -> int:
    import fcntl
    import termios

    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def test_300_idle_connections_give_way_at_the_default_caps(etcd):
    # the default caps (100 per client, 1000 in all); a long idle timeout, so that only the
    # caps close connections here, however slow the machine
    srv = start(etcd, **{"tcp-idle-timeout": 300})
    socks = []
    try:
        for _ in range(300):
            socks.append(connect(srv))
        with connect(srv) as fresh:  # was refused: the client held 100 idle connections
            assert ask(fresh).answer
        assert srv.query("h.example.test.", tcp=True).answer  # dnspython's own connection
        # the idle-longest went, one per newcomer: ours 0-199, then 200 for `fresh` (and 201
        # for dnspython's unless `fresh` was gone by then); the newest 98 are still held
        wait_for(lambda: all(closed(s) for s in socks[:201]), timeout=10,
                 message="the oldest idle connections were not closed")
        assert not any(closed(s) for s in socks[202:])
        assert ask(socks[-1], qid=8).answer
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_slow_reader_mid_reply_is_not_the_one_closed(etcd):
    etcd.put("/skydns/test/example/big/t", {"text": TEXT})
    srv = start(etcd, **{"tcp-max-per-client": 3, "tcp-max-connections": 0})
    socks = []
    try:
        slow = stalled_reader(srv)  # the oldest, and busy
        idle1, idle2 = connect(srv), connect(srv)
        socks += [slow, idle1, idle2]
        with connect(srv) as fresh:
            assert ask(fresh).answer
        wait_for(lambda: closed(idle1), timeout=5, message="idle1 was not closed")
        assert not closed(idle2) and not closed(slow)
        finish_reading(slow)
        assert "Traceback" not in srv.logs()
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_refused_only_when_every_held_connection_is_busy(etcd):
    etcd.put("/skydns/test/example/big/t", {"text": TEXT})
    srv = start(etcd, **{"tcp-max-per-client": 2, "tcp-max-connections": 3})
    socks = []
    try:
        slow1, slow2 = stalled_reader(srv), stalled_reader(srv)
        socks += [slow1, slow2]
        extra = connect(srv)  # a third from the same client: both of its own are busy
        socks.append(extra)
        assert _closed_by_server(extra, 5.0)
        other = connect(srv, "127.0.0.2")  # the total cap: 3 with this one
        socks.append(other)
        assert ask(other).answer
        with connect(srv, "127.0.0.3") as fresh:  # at the total: the idle one gives way
            assert ask(fresh).answer
        wait_for(lambda: closed(other), timeout=5, message="the idle one was not closed")
        finish_reading(slow1)
        finish_reading(slow2)
        assert srv.query("h.example.test.").answer  # UDP never depended on the slots
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_a_transfer_in_progress_is_busy(etcd):
    """An AXFR whose reader stalls keeps a query in progress: never the one closed."""
    etcd.put_many({f"/skydns/test/example/z/n{i}": {"host": f"10.7.{i // 250}.{i % 250 + 1}"}
                   for i in range(3000)})
    srv = start(etcd, **{"tcp-max-per-client": 2, "tcp-max-connections": 0})
    socks = []
    try:
        axfr = connect(srv, rcvbuf=4096)
        socks.append(axfr)
        axfr.sendall(_framed(query("example.test.", 252, qid=55)))
        wait_for(lambda: _inq(axfr) > 0, timeout=5, message="no transfer started")
        idle = connect(srv)
        socks.append(idle)
        with connect(srv) as fresh:
            assert ask(fresh).answer
        wait_for(lambda: closed(idle), timeout=5, message="the idle one was not closed")
        axfr.settimeout(10)
        names, first = 0, True
        while True:  # the whole transfer, SOA to SOA
            head = _recv_exact(axfr, 2)
            msg = dns.message.from_wire(_recv_exact(axfr, struct.unpack("!H", head)[0]),
                                        one_rr_per_rrset=True)
            names += sum(len(rrset) for rrset in msg.answer)
            if not first and msg.answer and msg.answer[-1].rdtype == 6:
                break
            first = False
        assert names >= 3000
    finally:
        for s in socks:
            s.close()
        srv.stop()
