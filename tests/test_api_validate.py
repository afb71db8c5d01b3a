"""Pure tests of the API's request validation (kubeapi/validate.py): tables of input -> result."""

import pytest

from kubeapi.errors import ApiError
from kubeapi.validate import (
    MAX_VALUES,
    Change,
    host_name,
    parse_body,
    parse_create,
    parse_delete,
    parse_type,
    parse_update,
    zone_name,
)

ZONE = "skydns.local."


@pytest.mark.parametrize("text, name", [
    ("cctv2", "cctv2.skydns.local."),
    ("CCTV2", "cctv2.skydns.local."),
    ("cctv2.skydns.local", "cctv2.skydns.local."),
    ("cctv2.skydns.local.", "cctv2.skydns.local."),
    ("qiyf-nginx-5.default.svc", "qiyf-nginx-5.default.svc.skydns.local."),
    ("_http._tcp.web", "_http._tcp.web.skydns.local."),
    ("*.wild", "*.wild.skydns.local."),
    ("www.google.com", "www.google.com.skydns.local."),  # relative unless it ends in the zone
])
def test_zone_name_accepts(text, name):
    assert zone_name(text, ZONE) == name


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("skydns.local", "apex"),
    ("skydns.local.", "apex"),
    ("www.google.com.", "outside the zone"),
    ("a..b", "empty label"),
    (".a", "empty label"),
    ("a/b", "labels may only"),
    ("bad name", "labels may only"),
    ("ünï", "labels may only"),
    ("x" * 64, "longer than 63"),
    (".".join(["abcdefghi"] * 30), "longer than 253"),
    ("a*b", "labels may only"),
    ("\x00", "labels may only"),
])
def test_zone_name_refuses(text, reason):
    with pytest.raises(ApiError) as err:
        zone_name(text, ZONE)
    assert err.value.status == 400
    assert reason in err.value.reason


@pytest.mark.parametrize("text, name", [
    ("ns1", "ns1.skydns.local."),
    ("ns1.example.com", "ns1.example.com."),
    ("NS1.Example.COM.", "ns1.example.com."),
])
def test_host_name(text, name):
    assert host_name(text, ZONE, "nsHost") == name


@pytest.mark.parametrize("raw", ["*.x", "a b", "", 5, None, "999.1.1.1", "10.0.0.300."])
def test_host_name_refuses(raw):
    with pytest.raises(ApiError):
        host_name(raw, ZONE, "nsHost")


@pytest.mark.parametrize("body, change", [
    ({"type": "A", "ips": ["192.168.10.1", "192.168.10.2"]},
     Change("A", ("192.168.10.1", "192.168.10.2"))),
    ({"type": "a", "ips": "10.0.0.1", "ttl": 60, "ptr": True},
     Change("A", ("10.0.0.1",), ttl=60, ptr=True)),
    ({"type": "A", "ips": ["10.0.0.1", "10.0.0.1"]}, Change("A", ("10.0.0.1",))),
    ({"type": "AAAA", "ips": ["2001:DB8:0::1"]}, Change("AAAA", ("2001:db8::1",))),
    ({"type": "SRV", "ips": ["10.0.0.1", "10.0.0.2"], "ports": [80]},
     Change("SRV", ("10.0.0.1", "10.0.0.2"), ports=(80, 80))),
    ({"type": "SRV", "ips": ["10.0.0.1", "::1"], "ports": [80, 8080], "priority": 5,
      "weight": 20},
     Change("SRV", ("10.0.0.1", "::1"), ports=(80, 8080), priority=5, weight=20)),
    ({"type": "cname", "alias": "tv1"}, Change("CNAME", ("tv1.skydns.local.",))),
    ({"type": "Cname", "alias": ["tv1", "tv2.skydns.local."]},
     Change("CNAME", ("tv1.skydns.local.", "tv2.skydns.local."))),
    ({"type": "NS", "nsHost": "ns1.example.com"}, Change("NS", ("ns1.example.com.",))),
    ({"type": "MX", "mailHost": "mail", "mailPriority": 5},
     Change("MX", ("mail.skydns.local.",), priorities=(5,))),
    ({"type": "MX", "mailHost": ["a.example.", "b.example."]},
     Change("MX", ("a.example.", "b.example."), priorities=(10, 10))),
    ({"type": "TXT", "text": "v=spf1 -all"}, Change("TXT", ("v=spf1 -all",))),
])
def test_parse_create(body, change):
    assert parse_create(body, ZONE) == change


@pytest.mark.parametrize("body, reason", [
    ([], "JSON object"),
    ("A", "JSON object"),
    ({}, "missing field 'type'"),
    ({"tpye": "A", "ips": ["10.0.0.1"]},
     "unknown field 'tpye' (did you mean 'type'?); missing field 'type'"),
    ({"type": "B", "ips": []}, "unknown type"),
    ({"type": 1, "ips": []}, "type must be a string"),
    ({"type": "A"}, "missing field 'ips'"),
    ({"type": "A", "ips": []}, "ips is empty"),
    ({"type": "A", "ips": ["::1"]}, "not an IPv4"),
    ({"type": "AAAA", "ips": ["10.0.0.1"]}, "not an IPv6"),
    ({"type": "A", "ips": ["10.0.0.256"]}, "not an IP"),
    ({"type": "A", "ips": ["010.0.0.1"]}, "not an IP"),
    ({"type": "A", "ips": [" 10.0.0.1"]}, "not an IP"),
    ({"type": "AAAA", "ips": ["fe80::1%eth0"]}, "scoped"),
    ({"type": "A", "ips": [10]}, "must be a string"),
    ({"type": "A", "ips": [["10.0.0.1"]]}, "must be a string"),
    ({"type": "A", "ips": [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_VALUES + 1)]},
     "at most"),
    ({"type": "A", "ips": ["10.0.0.1"], "ip": "x"}, "unknown field 'ip'"),
    ({"type": "A", "ips": ["10.0.0.1"], "ports": [80]}, "unknown field 'ports'"),
    ({"type": "A", "ips": ["10.0.0.1"], "ttl": -1}, "out of range"),
    ({"type": "A", "ips": ["10.0.0.1"], "ttl": 2**31}, "out of range"),
    ({"type": "A", "ips": ["10.0.0.1"], "ttl": "60"}, "integer"),
    ({"type": "A", "ips": ["10.0.0.1"], "ttl": 1.5}, "integer"),
    ({"type": "A", "ips": ["10.0.0.1"], "ptr": "yes"}, "ptr"),
    ({"type": "SRV", "ips": ["10.0.0.1"]}, "missing field 'ports'"),
    ({"type": "SRV", "ips": ["10.0.0.1"], "ports": [0]}, "out of range 1-65535"),
    ({"type": "SRV", "ips": ["10.0.0.1"], "ports": [65536]}, "out of range 1-65535"),
    ({"type": "SRV", "ips": ["10.0.0.1"], "ports": [True]}, "integer"),
    ({"type": "SRV", "ips": ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "ports": [1, 2]}, "one per"),
    ({"type": "SRV", "ips": ["10.0.0.1"], "ports": [80], "priority": 70000}, "out of range"),
    ({"type": "CNAME", "alias": "a.b.c."}, "outside the zone"),
    ({"type": "CNAME", "alias": ""}, "empty"),
    ({"type": "CNAME", "alias": 7}, "string"),
    ({"type": "NS", "nsHost": "*.x"}, "wildcard"),
    ({"type": "MX", "mailHost": "m", "mailPriority": -1}, "out of range"),
    ({"type": "TXT", "text": ""}, "empty"),
    ({"type": "TXT", "text": "x" * 5000}, "longer than"),
    ({"type": "TXT", "text": "\ud800"}, "Unicode"),
])
def test_parse_create_refuses(body, reason):
    with pytest.raises(ApiError) as err:
        parse_create(body, ZONE)
    assert err.value.status == 400
    assert reason in err.value.reason, err.value.reason


def test_parse_update():
    assert parse_update({"type": "A", "update": {"10.0.0.1": "10.0.0.2"}}, ZONE) == Change(
        "A", ("10.0.0.1", "10.0.0.2"), update=("10.0.0.1", "10.0.0.2"))
    assert parse_update({"type": "cname", "update": {"tv1": "tv2"}}, ZONE).update == (
        "tv1.skydns.local.", "tv2.skydns.local.")


@pytest.mark.parametrize("body, reason", [
    ({"type": "A"}, "update must be"),
    ({"type": "A", "update": {}}, "update must be"),
    ({"type": "A", "update": {"10.0.0.1": "10.0.0.2", "10.0.0.3": "10.0.0.4"}}, "one pair"),
    ({"type": "A", "update": ["10.0.0.1"]}, "update must be"),
    ({"type": "A", "update": {"10.0.0.1": "10.0.0.1"}}, "the same"),
    ({"type": "A", "update": {"10.0.0.1": 5}}, "string"),
    ({"type": "A", "update": {"10.0.0.1": "::1"}}, "IPv4"),
    ({"type": "A", "update": {"10.0.0.1": "10.0.0.2"}, "ips": []}, "unknown field"),
])
def test_parse_update_refuses(body, reason):
    with pytest.raises(ApiError) as err:
        parse_update(body, ZONE)
    assert reason in err.value.reason


def test_parse_delete():
    assert parse_delete(None, ZONE) is None
    assert parse_delete({"type": "A"}, ZONE) == Change("A")
    assert parse_delete({"type": "A", "ips": "10.0.0.1"}, ZONE) == Change("A", ("10.0.0.1",))
    with pytest.raises(ApiError):
        parse_delete({"type": "A", "ips": []}, ZONE)
    with pytest.raises(ApiError):
        parse_delete({"ips": ["10.0.0.1"]}, ZONE)


@pytest.mark.parametrize("raw, value", [
    (b"", None),
    (b"  \n", None),
    (b'{"type": "A"}', {"type": "A"}),
])
def test_parse_body(raw, value):
    assert parse_body(raw) == value


@pytest.mark.parametrize("raw, reason", [
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 100000, "nested too deeply"),
    (b'{"a": NaN', "not valid JSON"),
    (b"1" * 5000, "not valid JSON"),  # past Python's int digit limit
])
def test_parse_body_refuses(raw, reason):
    with pytest.raises(ApiError) as err:
        parse_body(raw)
    assert err.value.status == 400
    assert reason in err.value.reason


def test_parse_type():
    assert parse_type("cname") == "CNAME"
    with pytest.raises(ApiError):
        parse_type("PTR")  # written by the API itself (ptr: true), not by clients


def test_error_reason_is_one_short_line():
    err = ApiError(400, "a\nb\r\n" + "x" * 1000)
    assert "\n" not in err.reason and len(err.reason) <= 300
