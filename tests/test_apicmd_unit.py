"""`skydns-apicmd` without a server: the table, request bodies from flags, addresses."""

import argparse

import pytest

from apicmd.cli import _parser, _Usage, create_body, delete_body, update_body
from apicmd.client import base_url
from apicmd.table import describe, table


def test_table_lines_are_aligned_like_the_original():
    entries = [
        {"domain": "cctv2.skydns.local.", "type": "A",
         "ips": ["192.168.10.1", "192.168.10.2"], "status": {"192.168.10.1": "DOWN"}},
        {"domain": "cctv2.skydns.local.", "type": "CNAME", "alias": ["tv1.skydns.local."]},
        {"domain": "qiyf-nginx-14.default.svc.skydns.local.", "type": "A",
         "ips": ["192.168.19.125"]},
    ]
    wide = len("qiyf-nginx-14.default.svc.skydns.local")
    assert table(entries) == [
        "domain: " + "cctv2.skydns.local".rjust(wide)
        + "       val: { type:A  ips:[192.168.10.1(DOWN) 192.168.10.2] }",
        "domain: " + "cctv2.skydns.local".rjust(wide)
        + "       val: { type:Cname  alias:tv1.skydns.local }",
        "domain: qiyf-nginx-14.default.svc.skydns.local       val: { type:A  "
        "ips:[192.168.19.125] }",
    ]
    short = table(entries[:1])[0]  # names shorter than 30 characters still get 30
    assert short.startswith("domain: " + "cctv2.skydns.local".rjust(30) + "       val: ")
    assert table([]) == []


@pytest.mark.parametrize("entry, text", [
    ({"type": "SRV", "ips": ["10.0.0.1"], "ports": [80]}, "type:SRV  ips:[10.0.0.1]  ports:[80]"),
    ({"type": "CNAME", "alias": ["a.x.", "b.x."]}, "type:Cname  alias:[a.x b.x]"),
    ({"type": "NS", "nsHost": ["ns1.example.com."]}, "type:NS  nsHost:[ns1.example.com]"),
    ({"type": "MX", "mailHost": ["m.x."], "mailPriority": [5]},
     "type:MX  mailHost:[m.x]  mailPriority:[5]"),
    ({"type": "TXT", "text": ['say "hi"']}, 'type:TXT  text:["say \\"hi\\""]'),
])
def test_describe(entry, text):
    assert describe(entry) == text


def args(*argv) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


class NoServer:
    def show(self, name, rtype=None):
        return {"records": [{"type": "SRV", "ips": ["10.0.0.5"]}]}


@pytest.mark.parametrize("argv, body", [
    (["-ips", "192.168.10.1;192.168.10.2"], {"type": "A", "ips": ["192.168.10.1", "192.168.10.2"]}),
    (["-ips", "::1"], {"type": "AAAA", "ips": ["::1"]}),
    (["-ips", "10.0.0.1", "-ports", "80;443"], {"type": "SRV", "ips": ["10.0.0.1"],
                                                 "ports": [80, 443]}),
    (["-alias", "tv1"], {"type": "CNAME", "alias": ["tv1"]}),
    (["-mailhost", "m", "-mailpriority", "5"], {"type": "MX", "mailHost": ["m"],
                                                "mailPriority": 5}),
    (["-text", "a;b"], {"type": "TXT", "text": "a;b"}),
    (["--ips", "10.0.0.1", "-ptr", "-ttl", "60"], {"type": "A", "ips": ["10.0.0.1"],
                                                   "ptr": True, "ttl": 60}),
    (["-type", "srv", "-ips", "10.0.0.1", "-ports", "80"],
     {"type": "SRV", "ips": ["10.0.0.1"], "ports": [80]}),
])
def test_create_body(argv, body):
    assert create_body(args("-method", "create", "-domain", "x", *argv)) == body


@pytest.mark.parametrize("argv", [
    [],
    ["-ips", "10.0.0.1;::1"],
    ["-ips", "10.0.0.1", "-alias", "x"],
    ["-ips", ";"],
    ["-ips", "10.0.0.1", "-ports", "http"],
    ["-alias", "x", "-type", "bogus"],
])
def test_create_body_refuses(argv):
    with pytest.raises(_Usage):
        create_body(args("-method", "create", "-domain", "x", *argv))


def test_update_and_delete_bodies():
    update = args("-method", "update", "-domain", "x", "-updates", "ips:10.0.0.5->10.0.0.6")
    assert update_body(update, NoServer()) == {"type": "SRV", "update": {"10.0.0.5": "10.0.0.6"}}
    alias = args("-method", "update", "-domain", "x", "-updates", "alias: tv1 -> tv2")
    assert update_body(alias, NoServer()) == {"type": "CNAME", "update": {"tv1": "tv2"}}
    for bad in ("ips:10.0.0.1", "foo:a->b", "ips:->b", "nonsense"):
        with pytest.raises(_Usage):
            update_body(args("-method", "update", "-domain", "x", "-updates", bad), NoServer())
    whole = args("-method", "delete", "-domain", "x")
    assert delete_body(whole, NoServer()) is None
    some = args("-method", "delete", "-domain", "x", "-ips", "10.0.0.5")
    assert delete_body(some, NoServer()) == {"type": "SRV", "ips": ["10.0.0.5"]}
    typed = args("-method", "delete", "-domain", "x", "-type", "mx")
    assert delete_body(typed, NoServer()) == {"type": "MX"}


@pytest.mark.parametrize("addr, url", [
    ("127.0.0.1:9001", "http://127.0.0.1:9001"),
    ("http://127.0.0.1:9001/", "http://127.0.0.1:9001"),
    ("[::1]:9001", "http://[::1]:9001"),
    ("https://api.example:443", "https://api.example:443"),
])
def test_base_url(addr, url):
    assert base_url(addr) == url


@pytest.mark.parametrize("addr", ["", "ftp://x", "host:port", "http://"])
def test_base_url_refuses(addr):
    with pytest.raises(ValueError):
        base_url(addr)


def test_check_flags():
    body = create_body(args("-method", "create", "-domain", "w", "-ips", "10.0.0.1",
                            "-check", "http:8080/healthz", "-check", "https:/ready timeout=2"))
    assert body["checks"] == [{"http": "/healthz", "port": 8080, "scheme": "http"},
                              {"http": "/ready", "scheme": "https", "timeout": "2"}]
    for argv in (["-ips", "10.0.0.1", "-check", "ftp:21/"],
                 ["-ips", "10.0.0.1", "-check", "none", "-check", "http:80/"],
                 ["-alias", "x", "-check", "http:80/"]):
        with pytest.raises(_Usage):
            create_body(args("-method", "create", "-domain", "w", *argv))
    assert describe({"type": "A", "ips": ["10.0.0.1"], "checks": {
        "10.0.0.1": [{"http": "/h", "port": 81, "expect": "200"}]}}) == (
        "type:A  ips:[10.0.0.1]  checks:[http:81/h expect=200]")
