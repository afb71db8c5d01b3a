"""TSIG-signed zone transfers ([Dns] tsig-key): with the key a transfer goes through (from any
address), without it or with another key it is refused; every message is signed."""

from __future__ import annotations

import base64

import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from dnsserver.wire.tsig import TsigError, parse_key

from dnstest import Skydns

SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
KEY = f"xfr-key:hmac-sha256:{SECRET}"
RECORDS = {f"/skydns/test/example/big/i{i:04d}": {"host": f"10.9.{i // 250}.{i % 250 + 1}",
                                                  "text": "t" * 200} for i in range(1500)}
RECORDS["/skydns/test/example/dns/ns/ns1"] = {"host": "10.0.9.1"}


@pytest.fixture
def server(etcd):
    etcd.put_many(RECORDS)
    # no address may transfer without the key: only the key lets a client in
    srv = Skydns(etcd.endpoint, Dns={"axfr-allow": "192.0.2.0/32", "tsig-key": KEY}).start()
    yield srv
    srv.stop()


def test_key_parsing():
    key = parse_key(KEY)
    assert key.name == "xfr-key." and key.algorithm == "hmac-sha256"
    for bad in ("nocolon", "k:hmac-md5:" + SECRET, "k:hmac-sha256:not base64!",
                "a..b:hmac-sha256:" + SECRET):
        with pytest.raises(TsigError):
            parse_key(bad)


def test_signed_transfer_allowed_unsigned_refused(server):
    ring = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
    zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test.", port=server.port,
                                           keyring=ring, keyalgorithm="hmac-sha256",
                                           lifetime=20))
    assert zone.get_rdataset("i0001.big", "A")[0].address == "10.9.0.2"
    assert len(zone.nodes) > 1500  # many messages, each signed and checked by dnspython
    with pytest.raises(dns.xfr.TransferError) as err:
        list(dns.query.xfr("127.0.0.1", "example.test.", port=server.port, lifetime=5))
    assert err.value.rcode == dns.rcode.REFUSED
    other = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", base64.b64encode(
        b"another secret, another key....").decode())})
    # the key's name with another secret: NOTAUTH + BADSIG (RFC 8945 5.2.2), which dnspython
    # raises as the peer's verdict on our signature
    with pytest.raises(dns.tsig.PeerBadSignature):
        list(dns.query.xfr("127.0.0.1", "example.test.", port=server.port, keyring=other,
                           keyalgorithm="hmac-sha256", lifetime=5))
