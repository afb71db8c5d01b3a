"""dnstap output (issue #30): Frame Streams and the dnstap encoding with plain values, the
config keys, and skydns against the real tools: fstrm_capture as the collector, dnstap-read
reading what it wrote, dig as the client."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import threading
import urllib.request
from collections import Counter

import dns.exception
import dnstap_pb
import pytest
from dnslib import DNSRecord

from dnsserver.front.tap import TapWriter
from dnsserver.wire import fstrm
from dnsserver.wire.dnstap import (
    AUTH_QUERY,
    AUTH_RESPONSE,
    CLIENT_QUERY,
    FORWARDER_RESPONSE,
    FWD_UDP_RESPONSE,
    TCP_PAIR,
    TCP_QUERY,
    UDP_PAIR,
    UDP_QUERY,
    UDP_RESPONSE,
    Encoder,
    dnstap_identity,
    dnstap_version,
)
from skydns.config import ConfigError, load_config

from dnstest import Skydns, Upstream, free_port
from taptest import Collector, read_lines, read_messages, wait_until

# --- Frame Streams, pure -----------------------------------------------------------------------


def test_control_frames_round_trip():
    frame = fstrm.control(fstrm.READY, fstrm.DNSTAP)
    assert frame[:4] == b"\0\0\0\0"  # the escape: a control frame
    length = fstrm.control_length(frame[:8])
    assert len(frame) == 8 + length
    assert fstrm.parse_control(frame[8:]) == (fstrm.READY, [fstrm.DNSTAP])
    assert fstrm.parse_control(fstrm.control(fstrm.STOP)[8:]) == (fstrm.STOP, [])
    fstrm.check_accept(fstrm.ACCEPT, [b"other", fstrm.DNSTAP])
    fstrm.check_accept(fstrm.ACCEPT, [])  # a collector that lists no types takes any


@pytest.mark.parametrize("frame, why", [
    (fstrm.data_frame(b"hello")[:8], "expected a control frame"),
    (struct.pack("!II", 0, 100_000), "out of range"),
])
def test_bad_control_frame_heads(frame, why):
    with pytest.raises(fstrm.FstrmError, match=why):
        fstrm.control_length(frame)


def test_accept_must_be_accept_for_our_type():
    with pytest.raises(fstrm.FstrmError, match="expected ACCEPT, got FINISH"):
        fstrm.check_accept(fstrm.FINISH, [])
    with pytest.raises(fstrm.FstrmError, match="not protobuf:dnstap.Dnstap"):
        fstrm.check_accept(fstrm.ACCEPT, [b"protobuf:other"])
    with pytest.raises(fstrm.FstrmError, match="truncated"):
        fstrm.parse_control(struct.pack("!II", fstrm.ACCEPT, 1))


# --- the dnstap encoding, pure, decoded with dnstap's own schema (dnstap-pb) -------------------


def decode(data: bytes) -> list:
    out, i = [], 0
    while i < len(data):
        (length,) = struct.unpack_from("!I", data, i)
        message = dnstap_pb.Dnstap()
        message.ParseFromString(data[i + 4 : i + 4 + length])
        out.append(message)
        i += 4 + length
    return out


T0 = 1_700_000_000.123456  # unix time, as the hooks read it (time.time)


def test_messages_carry_every_field():
    enc = Encoder("ns1", "skydns 1.2", ["auth_query", "auth_response", "forwarder_response"],
                  server=("127.0.0.1", 5353))
    query, reply = b"\x12\x34" + bytes(30), b"\x12\x34" + bytes(200)
    data, count = enc.encode([
        (UDP_QUERY, query, ("10.1.2.3", 40000), T0),
        (UDP_RESPONSE, reply, ("10.1.2.3", 40000), T0 + 0.000005),
        (TCP_QUERY, query, ("2001:db8::7", 80, 0, 0), T0),
        (FWD_UDP_RESPONSE, reply, ("192.0.2.53", 53), T0),
    ])
    assert count == 4
    q, r, t, f = decode(data)
    for m in (q, r, t, f):
        assert m.identity == b"ns1" and m.version == b"skydns 1.2"
        assert m.type == dnstap_pb.Dnstap.MESSAGE
    assert q.message.type == AUTH_QUERY
    assert q.message.socket_family == dnstap_pb.INET
    assert q.message.socket_protocol == dnstap_pb.UDP
    assert q.message.query_address == socket.inet_aton("10.1.2.3")
    assert q.message.query_port == 40000
    assert q.message.response_address == socket.inet_aton("127.0.0.1")
    assert q.message.response_port == 5353
    assert q.message.query_time_sec == 1_700_000_000
    assert abs(q.message.query_time_nsec - 123_456_000) < 1000
    assert q.message.query_message == query and not q.message.HasField("response_message")
    assert r.message.type == AUTH_RESPONSE and r.message.response_message == reply
    assert r.message.response_time_sec == 1_700_000_000
    assert abs(r.message.response_time_nsec - 123_461_000) < 1000
    assert t.message.socket_family == dnstap_pb.INET6
    assert t.message.socket_protocol == dnstap_pb.TCP
    assert t.message.query_address == socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    # our exchange with an upstream: the upstream is the response side
    assert f.message.type == FORWARDER_RESPONSE
    assert f.message.response_address == socket.inet_aton("192.0.2.53")
    assert f.message.response_port == 53 and not f.message.query_address

    # a query and the answer sent while it was handled: one record, two messages
    data, count = enc.encode([(UDP_PAIR, (query, reply), ("10.1.2.3", 40000), T0),
                              (TCP_PAIR, (query, reply), ("10.1.2.3", 40001), T0)])
    pq, pr, tq, tr = decode(data)
    assert count == 4
    assert (pq.message.type, pr.message.type) == (AUTH_QUERY, AUTH_RESPONSE)
    assert pq.message.query_message == query and pr.message.response_message == reply
    assert pq.message.query_time_sec == pr.message.response_time_sec == 1_700_000_000
    assert pq.message.query_port == pr.message.query_port == 40000
    assert tq.message.socket_protocol == tr.message.socket_protocol == dnstap_pb.TCP


def test_senders_as_the_kernel_wrote_them():
    """The batch transport hands over the raw sockaddr_in/_in6 of each sender."""
    v4 = (struct.pack("=H", socket.AF_INET) + struct.pack("!H", 40000)
          + socket.inet_aton("10.9.8.7") + bytes(8))
    v6 = (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 53001, 0)
          + socket.inet_pton(socket.AF_INET6, "2001:db8::9") + bytes(4))
    mapped = (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 53002, 0)
              + socket.inet_pton(socket.AF_INET6, "::ffff:10.9.8.6") + bytes(4))
    enc = Encoder("i", "v", ["auth_query"])
    data, count = enc.encode([(UDP_QUERY, b"\0\0q", name, T0) for name in (v4, v6, mapped)])
    assert count == 3
    got = [(m.message.socket_family, m.message.query_address, m.message.query_port)
           for m in decode(data)]
    assert got == [(dnstap_pb.INET, socket.inet_aton("10.9.8.7"), 40000),
                   (dnstap_pb.INET6, socket.inet_pton(socket.AF_INET6, "2001:db8::9"), 53001),
                   (dnstap_pb.INET, socket.inet_aton("10.9.8.6"), 53002)]


def test_types_not_wanted_are_left_out_and_forwarded_names_are_client_messages():
    fwd = bytes(DNSRecord.question("far.OTHER.", "A").pack())
    ours = bytes(DNSRecord.question("x.example.test.", "A").pack())
    asked = []

    def forwarded(wire):
        asked.append(wire)
        return b"\x05other" in wire.lower()

    enc = Encoder("i", "v", ["client_query"], forwarded=forwarded)
    data, count = enc.encode([(UDP_QUERY, fwd, ("127.0.0.1", 1), T0),
                              (UDP_QUERY, ours, ("127.0.0.1", 1), T0),
                              (UDP_RESPONSE, fwd, ("127.0.0.1", 1), T0)])
    assert count == 1
    assert [m.message.type for m in decode(data)] == [CLIENT_QUERY]
    data, count = enc.encode([(UDP_PAIR, (fwd.lower(), fwd), ("127.0.0.1", 1), T0)])
    assert count == 1 and decode(data)[0].message.query_message == fwd.lower()
    assert asked == [fwd, ours]  # remembered per name, whatever its case
    # the wildcard address we listen on says nothing: left out
    data, _ = Encoder("i", "v", ["auth_query"], server=("0.0.0.0", 53)).encode(
        [(UDP_QUERY, b"\0\0q", ("127.0.0.1", 1), T0)])
    assert not decode(data)[0].message.response_address


def test_identity_and_version_defaults():
    assert dnstap_identity("", hostname=lambda: "dns-7.example") == "dns-7.example"
    assert dnstap_identity("edge-1", hostname=lambda: "dns-7.example") == "edge-1"
    assert dnstap_version("", version=lambda: "9.8.7") == "skydns 9.8.7"
    assert dnstap_version("custom", version=lambda: "9.8.7") == "custom"


def test_the_queue_is_bounded_and_losses_are_counted():
    """No collector: nothing queues beyond the limit, and every message lost is counted."""

    async def run():
        stats = Counter()
        writer = TapWriter(("unix", "/nonexistent/dnstap.sock"),
                           Encoder("i", "v", ["auth_query"]), stats, queue_limit=10)
        writer._loop = asyncio.get_running_loop()  # not started: no connection attempts
        for _ in range(25):
            writer.record(UDP_QUERY, b"\0\0q", ("127.0.0.1", 1))
        assert len(writer.pending) == 10 and stats["dnstap_dropped"] == 15
        writer.flush()  # not connected: the batch goes too
        assert not writer.pending and stats["dnstap_dropped"] == 25
        writer.record(UDP_PAIR, (b"\0\0q", b"\0\0r"), ("127.0.0.1", 1))
        writer.flush()
        assert stats["dnstap_dropped"] == 27  # a query and its response: two messages
        assert stats["dnstap_sent"] == 0

    asyncio.run(run())


# --- config -------------------------------------------------------------------------------


def load_log(tmp_path, kind="dns", **log):
    path = tmp_path / "x.conf"
    path.write_text("[Log]\n" + "".join(f"{k} = {v}\n" for k, v in log.items()))
    return load_config(str(path), kind)


@pytest.mark.parametrize("key, value, why", [
    ("dnstap", "udp:127.0.0.1:6000", "expected unix:/path/to/socket or tcp:host:port"),
    ("dnstap", "/run/dnstap.sock", "expected unix:/path/to/socket or tcp:host:port"),
    ("dnstap", "unix:", "expected a socket path"),
    ("dnstap", "tcp:127.0.0.1", "missing port"),
    ("dnstap", "tcp:127.0.0.1:70000", "port 70000 out of range"),
    ("dnstap-messages", "auth_query, resolver_query", "unknown message type 'resolver_query'"),
    ("dnstap-messages", '""', "no message type"),
])
def test_bad_values_are_one_error_naming_the_key(tmp_path, key, value, why):
    with pytest.raises(ConfigError) as info:
        load_log(tmp_path, **{key: value})
    message = str(info.value)
    assert f"[Log] {key}: " in message and why in message and "\n" not in message


def test_good_values(tmp_path):
    log = load_log(tmp_path, dnstap="unix:tap.sock", **{
        "dnstap-messages": "AUTH_QUERY, client_query, forwarder_response"})["Log"]
    assert log["dnstap"] == ("unix", str(tmp_path / "tap.sock"))  # relative to the file
    assert log["dnstap-messages"] == ["auth_query", "client_query", "forwarder_response"]
    assert load_log(tmp_path, dnstap="tcp:[::1]:6000")["Log"]["dnstap"] == ("tcp", ("::1", 6000))
    defaults = load_config(None, "dns")["Log"]
    assert defaults["dnstap"] == () and defaults["dnstap-messages"] == ["auth_query",
                                                                        "auth_response"]


def test_dnstap_is_a_key_of_the_dns_servers_file_only(tmp_path):
    with pytest.raises(ConfigError, match=r"\[Log\] dnstap: unknown key"):
        load_log(tmp_path, "scanner", dnstap="unix:/run/x.sock")


# --- the transports keep their plain handlers with dnstap off ------------------------------


def test_hooks_exist_only_with_dnstap_on():
    from dnsserver.engine import Engine
    from dnsserver.front.tcp import TcpConnection
    from dnsserver.front.udp import TappedUdpServer, UdpServer, udp_server_class

    engine = Engine(load_config(None, "dns"))
    assert udp_server_class(engine) is UdpServer
    udp, tcp = UdpServer(engine), TcpConnection(engine, 10.0)
    assert "datagram_received" not in vars(udp) and "_handle" not in vars(tcp)
    assert tcp.front is engine.cache.tcp_front
    engine.tap = TapWriter(("unix", "/x"), Encoder("i", "v", ["auth_query", "auth_response"]),
                           Counter())
    assert udp_server_class(engine) is TappedUdpServer
    tcp = TcpConnection(engine, 10.0)
    assert "_handle" in vars(tcp) and tcp.front is None
    # only our upstream exchanges wanted: the transports stay plain
    engine.tap = TapWriter(("unix", "/x"), Encoder("i", "v", ["forwarder_query"]), Counter())
    assert udp_server_class(engine) is UdpServer


# --- skydns with the real collector and reader -------------------------------------------------


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/skydns/stats", timeout=5) as reply:
        return json.load(reply)


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def dig(port: int, *args: str) -> str:
    out = subprocess.run(["dig", "-p", str(port), "@127.0.0.1", "+tries=1", "+time=3", *args],
                         capture_output=True, text=True, timeout=20)
    return out.stdout


def tapped_skydns(etcd, collector: Collector | None, target: str | None = None, **sections):
    stats_port = free_port()
    log = {"dnstap": target or collector.target, "dnstap-identity": "tap-test",
           **sections.pop("Log", {})}
    srv = Skydns(etcd.endpoint, Log=log, Stats={"statsServer": f"127.0.0.1:{stats_port}"},
                 **sections)
    return srv.start(), stats_port


@pytest.fixture
def collector(tmp_path):
    c = Collector(tmp_path)
    yield c
    c.kill()


def status(doc: dict) -> str:
    return doc["message"]["response_message_data"]["status"]


@pytest.mark.parametrize("batch", [True, False], ids=["udp-batch", "udp-loop"])
def test_dig_queries_read_back_with_dnstap_read(etcd, collector, batch):
    etcd.put("/skydns/test/example/www/x", {"host": "10.0.30.1"})
    collector.start()
    srv, _ = tapped_skydns(etcd, collector, Dns={"udp-batch": batch})
    try:
        assert "10.0.30.1" in dig(srv.port, "-b", "127.0.0.7", "www.example.test", "A")
        assert "NXDOMAIN" in dig(srv.port, "-b", "127.0.0.7", "nope.example.test", "A")
        assert "NOERROR" in dig(srv.port, "-b", "127.0.0.7", "+tcp", "www.example.test", "AAAA")
        assert "10.0.30.1" in dig(srv.port, "-b", "127.0.0.7", "www.example.test", "A")  # a hit
    finally:
        srv.stop()  # STOP, FINISH: the collector closes its file cleanly
    from dnsserver.front import udpbatch

    assert ("udp=batch" in srv.logs()) == (batch and udpbatch.available())
    out = collector.stop()
    ours = [line for line in read_lines(out) if "127.0.0.7" in line]
    expected = [("AQ", "UDP", "www.example.test/IN/A"), ("AR", "UDP", "www.example.test/IN/A"),
                ("AQ", "UDP", "nope.example.test/IN/A"), ("AR", "UDP", "nope.example.test/IN/A"),
                ("AQ", "TCP", "www.example.test/IN/AAAA"),
                ("AR", "TCP", "www.example.test/IN/AAAA"),
                ("AQ", "UDP", "www.example.test/IN/A"), ("AR", "UDP", "www.example.test/IN/A")]
    assert [(line.split()[2], line.split()[6], line.split()[8]) for line in ours] == expected, ours
    for line in ours:  # "AQ 127.0.0.7:PORT -> 127.0.0.1:PORT UDP 57b name/IN/A"
        assert line.split()[5] == f"127.0.0.1:{srv.port}"
    docs = [d for d in read_messages(out) if d["message"]["query_address"] == "127.0.0.7"]
    assert all(d["identity"] == "tap-test" and d["version"].startswith("skydns ")
               for d in docs)
    responses = [d for d in docs if d["message"]["type"] == "AUTH_RESPONSE"]
    assert [status(d) for d in responses] == ["NOERROR", "NXDOMAIN", "NOERROR", "NOERROR"]
    assert responses[0]["message"]["response_message_data"]["ANSWER"] == 1
    assert responses[2]["message"]["response_message_data"]["ANSWER"] == 0  # NODATA


@pytest.mark.parametrize("batch", [True, False], ids=["udp-batch", "udp-loop"])
def test_forwarded_names_are_client_and_forwarder_messages(etcd, collector, batch):
    etcd.put("/skydns/test/example/www/x", {"host": "10.0.30.1"})
    collector.start()
    with Upstream({"far.other.": "192.0.2.9"}) as upstream:
        srv, _ = tapped_skydns(
            etcd, collector, Dns={"nameservers": f"127.0.0.1:{upstream.port}",
                                  "udp-batch": batch},
            Log={"dnstap-messages": "auth_query, auth_response, client_query, client_response, "
                                    "forwarder_query, forwarder_response"})
        try:
            assert "192.0.2.9" in dig(srv.port, "-b", "127.0.0.8", "far.other", "A")
            assert "10.0.30.1" in dig(srv.port, "-b", "127.0.0.8", "www.example.test", "A")
        finally:
            srv.stop()
    docs = read_messages(collector.stop())
    seen = [(d["message"]["type"], d["message"].get("query_address"),
             d["message"].get("response_port")) for d in docs
            if d["message"].get("query_address") == "127.0.0.8"
            or d["message"]["type"].startswith("FORWARDER")]
    assert seen == [("CLIENT_QUERY", "127.0.0.8", srv.port),
                    ("FORWARDER_QUERY", None, upstream.port),
                    ("FORWARDER_RESPONSE", None, upstream.port),
                    ("CLIENT_RESPONSE", "127.0.0.8", srv.port),
                    ("AUTH_QUERY", "127.0.0.8", srv.port),
                    ("AUTH_RESPONSE", "127.0.0.8", srv.port)], seen
    forwarded = [d for d in docs if d["message"]["type"] == "FORWARDER_QUERY"]
    assert forwarded[0]["message"]["response_address"] == "127.0.0.1"


def test_forwarded_names_stay_out_by_default(etcd, collector):
    collector.start()
    with Upstream({"far.other.": "192.0.2.9"}) as upstream:
        srv, _ = tapped_skydns(etcd, collector, Dns={"nameservers": f"127.0.0.1:{upstream.port}"})
        try:
            assert "192.0.2.9" in dig(srv.port, "-b", "127.0.0.9", "far.other", "A")
            assert "NXDOMAIN" in dig(srv.port, "-b", "127.0.0.9", "no.example.test", "A")
        finally:
            srv.stop()
    lines = [line for line in read_lines(collector.stop()) if "127.0.0.9" in line]
    assert [line.split()[2] for line in lines] == ["AQ", "AR"]
    assert all("no.example.test/IN/A" in line for line in lines)


def test_tcp_collector(etcd, tmp_path):
    etcd.put("/skydns/test/example/www/x", {"host": "10.0.30.1"})
    collector = Collector(tmp_path, tcp_port=free_port()).start()
    try:
        srv, _ = tapped_skydns(etcd, collector)
        try:
            assert "10.0.30.1" in dig(srv.port, "-b", "127.0.0.10", "www.example.test")
        finally:
            srv.stop()
        lines = [line for line in read_lines(collector.stop()) if "127.0.0.10" in line]
    finally:
        collector.kill()
    assert [line.split()[2] for line in lines] == ["AQ", "AR"]


class Load:
    """Queries one after another from a thread until stopped; counts answers and failures."""

    def __init__(self, srv: Skydns):
        self.srv, self.answered, self.failed = srv, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                if self.srv.addresses("www.example.test.", timeout=2.0) == ["10.0.30.1"]:
                    self.answered += 1
                else:
                    self.failed.append("wrong answer")
            except (OSError, dns.exception.Timeout) as err:
                self.failed.append(repr(err))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


def test_no_collector_at_start(etcd, collector):
    """skydns starts and answers with the collector absent, counting what it loses, and
    connects once the collector is there."""
    etcd.put("/skydns/test/example/www/x", {"host": "10.0.30.1"})
    srv, stats_port = tapped_skydns(etcd, collector)  # nothing listens at the socket yet
    try:
        with Load(srv) as load:
            wait_until(lambda: stats(stats_port)["dnstap_dropped"] > 0,
                       message="losses not counted")
            assert stats(stats_port)["dnstap_sent"] == 0
            collector.start()
            wait_until(lambda: stats(stats_port)["dnstap_sent"] > 0,
                       message=f"never connected: {srv.logs()}")
        assert load.answered > 0 and load.failed == []
        assert metric(stats_port, "skydns_dnstap_dropped_total") > 0
    finally:
        srv.stop()
    assert any("www.example.test/IN/A" in line for line in read_lines(collector.stop()))


def test_collector_killed_and_restarted_mid_load(etcd, collector):
    etcd.put("/skydns/test/example/www/x", {"host": "10.0.30.1"})
    collector.start()
    srv, stats_port = tapped_skydns(etcd, collector)
    try:
        with Load(srv) as load:
            wait_until(lambda: stats(stats_port)["dnstap_sent"] > 20, message="nothing sent")
            collector.kill()
            answered = load.answered
            wait_until(lambda: stats(stats_port)["dnstap_dropped"] > 0,
                       message="losses not counted")
            wait_until(lambda: load.answered > answered + 20, message="answering stopped")
            sent = stats(stats_port)["dnstap_sent"]
            collector.start()  # a new file
            wait_until(lambda: stats(stats_port)["dnstap_sent"] > sent + 20,
                       message=f"never reconnected: {srv.logs()}")
        assert load.failed == [], load.failed[:5]
    finally:
        srv.stop()
    second = collector.stop()
    assert any("AQ" in line for line in read_lines(second))
    assert "dnstap collector went away" in srv.logs()




class StuckCollector:
    """A collector that does the handshake (the real Frame Streams bytes) and then never
    reads again: the slow collector at its worst."""

    def __init__(self, path):
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            head = conn.recv(8, socket.MSG_WAITALL)
            kind, types = fstrm.parse_control(
                conn.recv(fstrm.control_length(head), socket.MSG_WAITALL))
            assert kind == fstrm.READY and fstrm.DNSTAP in types
            conn.sendall(fstrm.control(fstrm.ACCEPT, fstrm.DNSTAP))

    def close(self):
        self.server.close()
        for conn in self.conns:
            conn.close()


def test_a_collector_that_stops_reading_costs_messages_not_answers(etcd, tmp_path):
    etcd.put("/skydns/test/example/www/x", {"host": "10.0.30.1"})
    stuck = StuckCollector(tmp_path / "stuck.sock")
    srv, stats_port = tapped_skydns(etcd, None, target=f"unix:{tmp_path / 'stuck.sock'}")
    try:
        with Load(srv) as load:
            wait_until(lambda: stats(stats_port)["dnstap_dropped"] > 0, timeout=60,
                       message="a collector that does not read never cost a message")
            answered = load.answered
            wait_until(lambda: load.answered > answered + 20, message="answering stopped")
        assert load.failed == [], load.failed[:5]
        assert stats(stats_port)["dnstap_sent"] > 0  # until the buffers were full
    finally:
        srv.stop()
        stuck.close()


def test_one_connection_per_worker(etcd, collector):
    etcd.put("/skydns/test/example/www/x", {"host": "10.0.30.1"})
    collector.start()
    srv, _ = tapped_skydns(etcd, collector, Dns={"workers": 2})
    try:
        wait_until(lambda: srv.logs().count("dnstap collector connected") == 2,
                   message=srv.logs())
        for _ in range(20):  # from 20 source ports: the kernel spreads them over the workers
            assert srv.addresses("www.example.test.") == ["10.0.30.1"]
    finally:
        srv.stop()
    lines = [line for line in read_lines(collector.stop()) if "www.example.test" in line]
    assert len(lines) >= 40  # and the readiness probes
