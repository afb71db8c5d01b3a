"""TSIG on every message (RFC 8945 5.2), not only on transfers: any opcode, UDP and TCP.

Unknown key -> NOTAUTH + BADKEY and bad MAC -> NOTAUTH + BADSIG, both with an empty MAC;
signed outside the fudge -> NOTAUTH + BADTIME, signed, our time in the other data; a good
signature -> the answer, signed with the same key, cached answers too (the cache holds only
unsigned bytes). Clients: dnspython (which verifies every signed reply and refuses an unsigned
one to a signed question) and dig -y; NSD, holding the same key, is the reference peer.
"""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.xfr
import dns.zone
import pytest
from test_engine import make_engine
from test_secondary_nsd import NSD, Nsd

from dnsserver.front.stats import snapshot
from dnsserver.wire import tsig
from skydns.config import ConfigError, load_config
from skydns.tsigkey import TsigError, parse_keys

from dnstest import ROOT, Skydns, free_port
from etcdtest import wait_for
from proctest import Process

S1 = base64.b64encode(b"k1 secret, 32 octets long.......").decode()
S2 = base64.b64encode(b"k2 secret: for hmac-sha512, 64 octets long......................").decode()
SX = base64.b64encode(b"the transfer key's own secret!!!").decode()
K1 = dns.tsig.Key("k1.", S1, "hmac-sha256")
K2 = dns.tsig.Key("k2.", S2, "hmac-sha512")
KX = dns.tsig.Key("xfr-key.", SX, "hmac-sha256")
UNKNOWN = dns.tsig.Key("nobody.", S1, "hmac-sha256")
WRONG_SECRET = dns.tsig.Key("k1.", base64.b64encode(b"not k1's secret").decode(), "hmac-sha256")
WRONG_ALG = dns.tsig.Key("k1.", S1, "hmac-sha512")  # k1 is an hmac-sha256 key
DNS = {
    "axfr-allow": "192.0.2.0/32",  # no address may transfer: only a key lets a client in
    "tsig-key": f"xfr-key:hmac-sha256:{SX}",
    "tsig-keys": f"k1:hmac-sha256:{S1}, k2:hmac-sha512:{S2}",
}
ENGINE_DNS = {**DNS, "tsig-keys": [k.strip() for k in DNS["tsig-keys"].split(",")]}
RECORDS = {
    "/skydns/test/example/web/a1": {"host": "10.1.0.1"},
    "/skydns/test/example/dns/ns/ns1": {"host": "10.0.0.1"},
    **{f"/skydns/test/example/many/i{i:02d}": {"host": f"10.2.0.{i}"} for i in range(1, 41)},
}
ZONE = """$ORIGIN example.test.
$TTL 30
@ IN SOA ns1.ns.dns hostmaster 1 3600 600 86400 30
@ IN NS ns1.ns.dns
ns1.ns.dns IN A 10.0.0.1
web IN A 10.1.0.1
"""


# -- crafting and reading signed messages (dnspython does the crypto: an independent peer) --

def sign_at(query: dns.message.Message, key: dns.tsig.Key, when: int,
            mac_size: int | None = None) -> tuple[bytes, bytes]:
    """`query` signed with `key` as if the client's clock said `when` (dnspython signs with
    the machine's clock; this moves only the signature, not a clock). `mac_size` truncates
    the MAC (RFC 8945 5.2.2.1) or pads it. Returns (wire, the MAC sent)."""
    wire = query.to_wire()
    rdata = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm,
                                      when, 300, b"", query.id, 0, b"")
    rdata, _ = dns.tsig.sign(wire, key, rdata, when)
    if mac_size is not None:  # cut, or padded past the digest's size
        rdata = rdata.replace(mac=rdata.mac[:mac_size].ljust(mac_size, b"\0"))
    rd = rdata.to_wire()
    record = key.name.to_wire() + struct.pack("!HHIH", 250, 255, 0, len(rd)) + rd
    arcount = struct.unpack("!H", wire[10:12])[0] + 1
    return wire[:10] + struct.pack("!H", arcount) + wire[12:] + record, rdata.mac


def query(name="web.example.test.", rdtype="A", **kw) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    q.flags &= ~dns.flags.RD
    return q


def tcp_raw(port: int, wire: bytes, host: str = "127.0.0.1") -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = sock.recv(65535)
            if not chunk:
                raise ConnectionError("closed before the reply")
            data += chunk
        return data[2 : 2 + struct.unpack("!H", data[:2])[0]]


def udp_raw(port: int, wire: bytes, host: str = "127.0.0.1") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect((host, port))  # only the server's reply is taken
        sock.send(wire)
        return sock.recv(65535)


def tsig_of(reply: bytes) -> tuple:
    """(rcode, TSIG error, MAC length) of a reply, its signature not checked; (rcode, None,
    None) when it has no TSIG."""
    m = dns.message.from_wire(reply, keyring=False)
    if not m.had_tsig:
        return dns.rcode.to_text(m.rcode()), None, None
    error = {0: "NOERROR", 16: "BADSIG"}.get(m.tsig_error) or dns.rcode.to_text(m.tsig_error)
    return dns.rcode.to_text(m.rcode()), error, len(m.mac)


def verified(reply: bytes, key: dns.tsig.Key, request_mac: bytes) -> dns.message.Message:
    """The reply, its TSIG checked by dnspython as a client does (raises if bad or absent)."""
    return dns.message.from_wire(reply, keyring=key, request_mac=request_mac)


def verify_error_reply(reply: bytes, key: dns.tsig.Key, request_mac: bytes):
    """The TSIG rdata of a signed error reply (BADTIME), its MAC checked with dnspython's
    digest (its client refuses to look past the error code)."""
    m = dns.message.from_wire(reply, keyring=False)
    rdata = m.tsig[0]
    rr = m.tsig.name.to_wire() + struct.pack("!HHIH", 250, 255, 0, len(rdata.to_wire()))
    start = len(reply) - len(rr) - len(rdata.to_wire())
    assert reply[start:] == rr + rdata.to_wire()  # the TSIG is last and written plainly
    unsigned = reply[:10] + struct.pack("!H", struct.unpack("!H", reply[10:12])[0] - 1)
    unsigned += reply[12:start]
    dns.tsig._digest(unsigned, key, rdata, None, request_mac).verify(rdata.mac)
    return rdata


def answers(m: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in m.answer for rr in rrset)


# -- a real skydns with three keys ----------------------------------------------------------

@pytest.fixture(scope="module")
def server(etcd_server):
    etcd_server.ensure_running()
    etcd_server.delete_prefix("/skydns")
    etcd_server.put_many(RECORDS)
    srv = Skydns(etcd_server.endpoint, Dns=DNS).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("key", [K1, K2, KX], ids=["k1-sha256", "k2-sha512", "tsig-key"])
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_good_signature_gets_the_answer_signed(server, key, tcp):
    q = query()
    q.use_tsig(key)
    send = dns.query.tcp if tcp else dns.query.udp
    r = send(q, "127.0.0.1", port=server.port, timeout=5)  # dnspython verifies the TSIG
    assert r.had_tsig and r.tsig_error == 0 and r.keyname == key.name
    assert r.rcode() == dns.rcode.NOERROR and answers(r) == ["10.1.0.1"]


CASES = {  # what the request is signed with -> (rcode, TSIG error, MAC length) of the reply
    "unknown key": (UNKNOWN, 0, ("NOTAUTH", "BADKEY", 0)),
    "wrong algorithm": (WRONG_ALG, 0, ("NOTAUTH", "BADKEY", 0)),
    "bad MAC": (WRONG_SECRET, 0, ("NOTAUTH", "BADSIG", 0)),
    "time past the fudge": (K1, -1000, ("NOTAUTH", "BADTIME", 32)),
    "time ahead past the fudge": (K1, 1000, ("NOTAUTH", "BADTIME", 32)),
    "time within the fudge": (K1, -200, ("NOERROR", "NOERROR", 32)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_each_tsig_error_is_answered_as_rfc8945_says(server, case, tcp):
    key, shift, want = CASES[case]
    for edns in (None, 0):  # dig sends OPT and TSIG (two additional records), dnspython one
        q = query(use_edns=edns)
        when = int(time.time()) + shift
        wire, mac = sign_at(q, key, when)
        reply = (tcp_raw if tcp else udp_raw)(server.port, wire)
        assert tsig_of(reply) == want, (case, edns)
        m = dns.message.from_wire(reply, keyring=False)
        assert m.id == q.id and m.flags & dns.flags.QR
        if want[1] == "BADTIME":  # signed by the key, our time beside the client's
            rdata = verify_error_reply(reply, key, mac)
            assert rdata.time_signed == when  # the client's time, echoed
            server_time = int.from_bytes(rdata.other, "big")
            assert len(rdata.other) == 6 and abs(server_time - time.time()) < rdata.fudge
        elif want[0] == "NOERROR":
            assert answers(verified(reply, key, mac)) == ["10.1.0.1"]


def test_signed_and_unsigned_askers_each_get_their_kind_from_the_cache(server):
    """The same question alternately plain and signed, many times, both transports: the plain
    repeats go through the front caches (query bytes -> reply bytes), the signed ones through
    the answer cache and a signature per request; neither kind ever leaks to the other."""
    for tcp in (False, True):
        send = dns.query.tcp if tcp else dns.query.udp
        for name in ("fresh.web.example.test.", "web.example.test."):  # first asked signed
            for i in range(8):
                q = query(name, use_edns=0 if i % 4 < 2 else None)
                if i % 2 == 0:
                    q.use_tsig(K1 if i % 4 == 0 else K2)
                    r = send(q, "127.0.0.1", port=server.port, timeout=5)  # verified
                    assert r.had_tsig and r.tsig_error == 0
                else:  # parsed without a keyring: any TSIG in the reply raises
                    r = send(q, "127.0.0.1", port=server.port, timeout=5)
                    assert not r.had_tsig
                assert r.rcode() == (dns.rcode.NOERROR if name.startswith("web")
                                     else dns.rcode.NXDOMAIN)


def test_signed_notify_and_other_opcodes_are_checked_and_signed(server):
    """NOTIFY to skydns (it is no secondary: NOTIMP), signed: the NOTIMP is signed; with a
    key we do not hold, NOTAUTH + BADKEY like any other message."""
    q = dns.message.make_query("example.test.", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    q.flags = dns.flags.AA | (q.flags & ~dns.flags.RD)
    q.use_tsig(K1)
    for send in (dns.query.udp, dns.query.tcp):
        r = send(q, "127.0.0.1", port=server.port, timeout=5)  # dnspython verifies
        assert r.opcode() == dns.opcode.NOTIFY and r.rcode() == dns.rcode.NOTIMP
        assert r.had_tsig and r.tsig_error == 0
    q = dns.message.make_query("example.test.", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    wire, _ = sign_at(q, UNKNOWN, int(time.time()))
    assert tsig_of(udp_raw(server.port, wire)) == ("NOTAUTH", "BADKEY", 0)
    q = dns.message.make_query("example.test.", "SOA")
    q.set_opcode(dns.opcode.UPDATE)
    wire, mac = sign_at(q, K2, int(time.time()))
    r = verified(udp_raw(server.port, wire), K2, mac)
    assert r.opcode() == dns.opcode.UPDATE and r.rcode() == dns.rcode.NOTIMP


@pytest.mark.parametrize("key", [K2, KX], ids=["tsig-keys", "tsig-key"])
def test_transfers_take_any_configured_key(server, key):
    zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test.", port=server.port,
                                           keyring=key, lifetime=20))
    assert zone.get_rdataset("a1.web", "A")[0].address == "10.1.0.1"
    # IXFR (the client's SOA in the authority section, then the TSIG): the whole zone
    messages = list(dns.query.xfr("127.0.0.1", "example.test.", rdtype=dns.rdatatype.IXFR,
                                  serial=0, port=server.port, keyring=key, lifetime=20))
    assert messages and all(m.had_tsig for m in messages)  # each one verified by dnspython
    with pytest.raises(dns.xfr.TransferError) as err:  # unsigned: refused, as before
        list(dns.query.xfr("127.0.0.1", "example.test.", port=server.port, lifetime=5))
    assert err.value.rcode == dns.rcode.REFUSED


def test_a_misplaced_or_second_tsig_is_formerr(server):
    wire, _ = sign_at(query(), K1, int(time.time()))
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # an OPT record after the TSIG
    after = wire[:10] + struct.pack("!H", 2) + wire[12:] + opt
    tsig_rr = wire[len(query().to_wire()):]
    twice = wire[:10] + struct.pack("!H", 2) + wire[12:] + tsig_rr
    for bad in (after, twice):
        for send in (udp_raw, tcp_raw):
            assert tsig_of(send(server.port, bad)) == ("FORMERR", None, None)


def test_truncated_macs_as_rfc8945_5_2_2_1_allows(server):
    """16 of hmac-sha256's 32 octets (the least allowed): accepted, and the reply's MAC
    chains to the truncated one; fewer, or more than the digest: FORMERR."""
    q = query()
    wire, mac = sign_at(q, K1, int(time.time()), mac_size=16)
    assert len(mac) == 16
    assert answers(verified(udp_raw(server.port, wire), K1, mac)) == ["10.1.0.1"]
    wire, _ = sign_at(query(), K1, int(time.time()), mac_size=9)
    assert tsig_of(udp_raw(server.port, wire)) == ("FORMERR", None, None)
    wire, _ = sign_at(query(), K1, int(time.time()), mac_size=33)
    assert tsig_of(udp_raw(server.port, wire)) == ("FORMERR", None, None)


def test_a_signed_reply_too_big_for_udp_says_tc_and_tcp_has_it(server):
    """Forty addresses fill 512 octets (no EDNS0): no room for the TSIG, so the UDP reply is
    the question with TC=1, signed (RFC 8945 5.3); over TCP the whole answer, signed."""
    q = query("many.example.test.")
    q.use_tsig(K1)
    r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=5)  # verified
    assert r.flags & dns.flags.TC and not r.answer and r.rcode() == dns.rcode.NOERROR
    r = dns.query.tcp(q, "127.0.0.1", port=server.port, timeout=5)
    assert len(answers(r)) == 40 and r.had_tsig


DIG = shutil.which("dig")


@pytest.mark.skipif(DIG is None, reason="dig is not installed")
def test_dig_y(server):
    def dig(key: str, *extra: str) -> str:
        done = subprocess.run([DIG, "+norec", "+time=3", "+tries=1", "-p", str(server.port),
                               "@127.0.0.1", "-y", key, *extra, "web.example.test.", "A"],
                              capture_output=True, text=True, timeout=30)
        return done.stdout + done.stderr

    for extra in ((), ("+tcp",)):
        good = dig(f"hmac-sha256:k1:{S1}", *extra)
        assert "status: NOERROR" in good and "10.1.0.1" in good, good
        assert "TSIG PSEUDOSECTION" in good and "verify" not in good.lower(), good
        assert "expected a TSIG" not in good and "WARNING" not in good, good
        good = dig(f"hmac-sha512:k2:{S2}", *extra)
        assert "status: NOERROR" in good and "WARNING" not in good, good
        for name in ("nobody", "."):  # "." as in the issue: answered NOERROR, unsigned, once
            unknown = dig(f"hmac-sha256:{name}:{S1}", *extra)
            assert "status: NOTAUTH" in unknown and "BADKEY" in unknown, unknown
            assert "expected a TSIG" not in unknown, unknown
        bad = dig(f"hmac-sha256:k1:{SX}", *extra)
        assert "status: NOTAUTH" in bad and "BADSIG" in bad, bad


KNOTD = shutil.which("knotd") or ("/usr/sbin/knotd" if Path("/usr/sbin/knotd").exists() else None)


class Knot(Process):
    """knotd serving ZONE from a temp dir on 127.0.0.1:<free port>, holding key k1 (an ACL
    must name a key for Knot to accept it at all; for queries any zone ACL will do)."""

    what = "knotd"

    def __init__(self):
        super().__init__("skydns-knot-", "knot.log")
        self.host, self.port = "127.0.0.1", free_port()
        (self.dir / "example.test.zone").write_text(ZONE)
        (self.dir / "knot.conf").write_text(f"""server:
    listen: 127.0.0.1@{self.port}
    rundir: {self.dir}
database:
    storage: {self.dir}
key:
  - id: k1
    algorithm: hmac-sha256
    secret: {S1}
acl:
  - id: k1-acl
    key: k1
    action: transfer
zone:
  - domain: example.test
    file: {self.dir}/example.test.zone
    acl: k1-acl
log:
  - target: stdout
    any: info
""")

    def command(self) -> list[str]:
        return [KNOTD, "-c", str(self.dir / "knot.conf")]

    def ready(self) -> bool:
        self.assert_running()
        try:
            dns.query.udp(query(), self.host, port=self.port, timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return False
        return True


class NsdPrimary(Nsd):
    """NSD serving ZONE, holding key k1."""

    def __init__(self):
        super().__init__(key=("k1", S1))

    def start(self):
        super().start(None, zone=ZONE)
        wait_for(self.ready, timeout=20, message="NSD did not come up")
        return self

    def ready(self) -> bool:
        try:
            dns.query.udp(query(), self.host, port=self.port, timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return False
        return True


# Where a peer parts from RFC 8945, and from us, on purpose (RFC 8945 5.2.1 and 5.2.3):
# NSD finds a key by its name alone and checks the MAC with whatever algorithm the request
# names, and sends BADTIME unsigned; Knot does both as we do.
DEVIATIONS = {"nsd": {"wrong algorithm": None, "time past the fudge": "unsigned",
                      "time ahead past the fudge": "unsigned"}, "knot": {}}


@pytest.mark.parametrize("peer", [
    pytest.param("nsd", marks=pytest.mark.skipif(NSD is None, reason="nsd is not installed")),
    pytest.param("knot", marks=pytest.mark.skipif(KNOTD is None,
                                                  reason="knotd is not installed")),
])
def test_errors_are_what_nsd_and_knot_say(server, peer):
    """NSD and Knot holding the same key get the same bytes: the same rcode, TSIG error and
    signed-or-not from them as from skydns, but where DEVIATIONS says they differ."""
    other = (NsdPrimary() if peer == "nsd" else Knot()).start()
    try:
        differ = []
        for case, (key, shift, want) in CASES.items():
            deviation = DEVIATIONS[peer].get(case, "")
            if deviation is None:
                continue
            for transport in (udp_raw, tcp_raw):
                wire, _ = sign_at(query(), key, int(time.time()) + shift)
                theirs = tsig_of(transport(other.port, wire, other.host))
                ours = tsig_of(transport(server.port, wire))
                if deviation == "unsigned":
                    theirs = theirs[:2] + (want[2],) if theirs[2] == 0 else ("MAC?",)
                if ours != theirs:
                    differ.append((case, transport.__name__, ours, theirs))
        assert not differ, differ
    finally:
        other.stop()


# -- without sockets: the clock handed in, the pieces on plain values -------------------------

def test_badtime_carries_the_servers_handed_in_clock():
    engine = make_engine(RECORDS, **ENGINE_DNS)
    server_time = 2_000_000_000
    engine.clock = lambda: server_time
    q = query()
    wire, mac = sign_at(q, K1, server_time - 301)
    reply = engine.miss(wire, "127.0.0.1", False)
    assert tsig_of(reply) == ("NOTAUTH", "BADTIME", 32)
    rdata = verify_error_reply(reply, K1, mac)
    assert rdata.time_signed == server_time - 301 and rdata.fudge == 300
    assert int.from_bytes(rdata.other, "big") == server_time
    wire, mac = sign_at(query(), K1, server_time - 300)  # at the edge: still in time
    reply = engine.miss(wire, "127.0.0.1", False)
    assert tsig_of(reply) == ("NOERROR", "NOERROR", 32)
    assert dns.message.from_wire(reply, keyring=False).tsig[0].time_signed == server_time


def test_a_hostile_tsig_costs_bounded_work():
    """A TSIG whose key name is a chain of compression pointers, or one pointing forward
    (a loop): FORMERR, at once."""
    engine = make_engine(RECORDS, **ENGINE_DNS)
    base = query().to_wire()
    rd = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, K1.algorithm,
                                   1, 300, b"x" * 32, 1, 0, b"").to_wire()
    tail = struct.pack("!HHIH", 250, 255, 0, len(rd)) + rd
    loop = b"\xc0" + bytes((len(base),))  # points at itself
    for owner in (loop, b"\xc0\xff"):
        wire = base[:10] + b"\x00\x01" + base[12:] + owner + tail
        assert tsig_of(engine.miss(wire, "127.0.0.1", False)) == ("FORMERR", None, None)
    # a name pointing back at the question's is fine (compression, as some clients do it)
    wire = base[:10] + b"\x00\x01" + base[12:] + b"\xc0\x0c" + tail
    assert tsig_of(engine.miss(wire, "127.0.0.1", False))[:2] == ("NOTAUTH", "BADKEY")
    assert tsig.read_request(base) is None


def test_the_cache_only_ever_holds_unsigned_replies():
    """Signed questions are answered from the answer cache (one miss, then hits), which
    keeps the unsigned bytes; the fronts (query bytes -> reply) never see them; each
    request counts once."""
    engine = make_engine(RECORDS, **ENGINE_DNS)
    for tcp in (False, False, False, True):
        q = query()
        q.use_tsig(K1)
        wire = q.to_wire()
        verified(engine.miss(wire, "127.0.0.1", tcp), K1, q.mac)
    wire, _ = sign_at(query(), UNKNOWN, int(time.time()))
    assert tsig_of(engine.miss(wire, "127.0.0.1", False))[1] == "BADKEY"
    assert len(engine.cache) == 2  # the UDP and the TCP reply
    for entry in engine.cache.all_entries():
        for variant in entry.variants:
            assert b"\x00\xfa\x00\xff" not in variant[2]  # no TSIG record (type 250, ANY)
    assert not engine.cache.front and not engine.cache.tcp_front
    counters = snapshot(engine)["counters"]
    assert (counters["requests"], counters["cache_misses"], counters["cache_hits"]) == (5, 2, 2)
    assert (counters["tsig_signed"], counters["tsig_failed"]) == (4, 1)


def test_log_queries_reads_signed_queries(caplog):
    """[Log] log-queries names a signed question too (OPT and TSIG: two additional records,
    which the query checks alone would refuse)."""
    engine = make_engine(RECORDS, **ENGINE_DNS)
    q = query(use_edns=0)
    q.use_tsig(K1)
    with caplog.at_level(logging.INFO, logger="skydns.engine"):
        engine.log_query(q.to_wire(), "127.0.0.1", False)
    assert [r.kv["name"] for r in caplog.records if r.msg == "query"] == ["web.example.test."]


# -- config ------------------------------------------------------------------------------------

def test_bad_tsig_keys_entries_are_each_named(tmp_path):
    path = tmp_path / "skydns.conf"
    path.write_text(f"[Dns]\ntsig-keys = good:hmac-sha256:{S1}, nocolon, "
                    f"k:hmac-md5:{S1}, k3:hmac-sha256:not*base64, good:hmac-sha1:{S1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), "dns")
    text = str(err.value)
    assert "[Dns] tsig-keys" in text
    for part in ("entry 2: expected name:algorithm:base64-secret",
                 "entry 3 ('k'): algorithm 'hmac-md5' not supported",
                 "entry 4 ('k3'): the secret is not base64",
                 "entry 5 ('good'): key 'good.' is given twice"):
        assert part in text, text
    assert S1 not in text  # secrets stay out of error lines
    path.write_text(f"[Dns]\ntsig-key = k1:hmac-sha256:{SX}\ntsig-keys = k1:hmac-sha256:{S1}\n")
    with pytest.raises(ConfigError, match="also tsig-key"):
        load_config(str(path), "dns")
    path.write_text(f"[Dns]\ntsig-key = k1:hmac-sha256:{S1}\n"
                    f"tsig-keys = k1:hmac-sha256:{S1}, k2:hmac-sha512:{S2}\n")
    assert load_config(str(path), "dns")["Dns"]["tsig-keys"][1].startswith("k2:")
    with pytest.raises(TsigError):
        parse_keys(["k:hmac-sha256:"])


def test_skydns_exits_2_naming_the_bad_entry(tmp_path):
    path = tmp_path / "skydns.conf"
    path.write_text(f"[Dns]\ntsig-keys = k1:hmac-sha256:{S1}, k2:hmac-sha256\n")
    done = subprocess.run([sys.executable, "-m", "dnsserver", "--config-file", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"skydns: config error: {path}: [Dns] tsig-keys: entry 2 ('k2'): "
        "expected name:algorithm:base64-secret"]
