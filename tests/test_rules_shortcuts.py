"""The shortcuts the answer path takes for speed give what the long way gives: the index's
reads of a name's records, SRV RDATA kept by record, the negative SOA's rendered copies."""

from __future__ import annotations

import json
import struct

import dns.message

from dnsserver.wire import render
from dnsserver.zone import rules
from dnsserver.zone.context import Context, ZoneSettings
from dnsserver.zone.index import RecordIndex
from skydns.health import HealthView
from skydns.keys import key_to_path
from skydns.records import parse_record


def _record(key: str, value: dict):
    return parse_record(key, key_to_path(key), json.dumps(value).encode())


def _the_long_way(index: RecordIndex, path: tuple) -> list:
    return sorted((r for r in index.records() if r.path[: len(path)] == path),
                  key=lambda r: r.path)


def test_below_reads_every_shape_of_a_subtree_in_key_order():
    """One record one or more labels down (name/x), one per branch (inserted out of order),
    one branch deeper than the others, a record at the name and below it: below() reads the
    same records in the same order as a walk over every record, before and after deletes."""
    keys = ["/skydns/t/a/x", "/skydns/t/b/z", "/skydns/t/b/y", "/skydns/t/b/m",
            "/skydns/t/c/z", "/skydns/t/c/b", "/skydns/t/d/y/deep", "/skydns/t/d/x",
            "/skydns/t/e", "/skydns/t/e/x", "/skydns/t/f/g/h/i", "/skydns/t/g/y/1",
            "/skydns/t/g/y/2"]
    index = RecordIndex()
    for i, key in enumerate(keys):
        index.put(_record(key, {"host": f"10.0.0.{i + 1}"}))
    names = [("t",), ("t", "a"), ("t", "b"), ("t", "c"), ("t", "d"), ("t", "e"), ("t", "f"),
             ("t", "f", "g"), ("t", "g"), ("t", "g", "y"), ("t", "nope"), ("t", "a", "x", "z")]
    for path in names:
        assert index.below(path) == _the_long_way(index, path), path
    for key in ["/skydns/t/b/m", "/skydns/t/d/y/deep", "/skydns/t/e", "/skydns/t/g/y/1"]:
        index.delete(key)
        for path in names:
            assert index.below(path) == _the_long_way(index, path), (key, path)


def test_srv_weights_follow_the_set_when_its_records_are_unchanged():
    """SRV RDATA is kept by record while its weight holds: a target joining the set changes
    the weights of the records that stayed."""
    index = RecordIndex()
    for n in (1, 2):
        index.put(_record(f"/skydns/test/example/db/s{n}", {"host": f"10.0.1.{n}", "port": 5432}))
    ctx = Context(index, HealthView(), ZoneSettings(domain="example.test."))
    path = ("test", "example", "db")

    def weights():
        got = rules.answer(ctx, path, rules.T_SRV)
        return [struct.unpack(">HHH", rdata[:6])[1] for _, _, rdata in got.answer]

    assert weights() == [50, 50]
    index.put(_record("/skydns/test/example/db/s3", {"host": "10.0.1.3", "port": 5432}))
    assert weights() == [33, 33, 33]
    index.delete("/skydns/test/example/db/s3")
    assert weights() == [50, 50]


def test_negative_soa_copies_follow_the_record_they_were_made_from():
    """Two SOA records of one shape (a serial apart) rendered in turn at the same place: each
    reply carries its own serial, the same bytes as a fresh rendering."""
    ctx = Context(RecordIndex(), HealthView(), ZoneSettings(domain="example.test."))
    qlabels = (b"nope", b"example", b"test")
    question = b"\x04nope\x07example\x04test\x00\x00\x01\x00\x01"

    def reply(serial):
        ctx.serial = serial
        got = rules.answer(ctx, ("test", "example", "nope"), rules.T_A, qlabels)
        return render.message(got, question, qlabels, 512, False, b"")

    first, second = reply(7), reply(8)
    assert first != second
    assert reply(7) == first and reply(8) == second
    render._soa_chunks.clear()
    assert reply(8) == second and reply(7) == first
    assert dns.message.from_wire(first).authority[0][0].serial == 7
    assert dns.message.from_wire(second).authority[0][0].serial == 8


def test_first_names_kept_give_the_bytes_written_afresh():
    """The first name written besides the question's (MX/CNAME/NS targets, glue owners) is
    kept by (question name, name, offset) with the suffix table after it: replies made from
    the kept ones are the bytes made with nothing kept, for names sharing suffixes with the
    question or not, at different offsets, with glue pointing back at them."""
    head_mx = rules.HEAD.pack(rules.T_MX, 1, 30)
    head_a = rules.HEAD.pack(rules.T_A, 1, 30)
    cases = []
    for qname in ("m1.mail.example.test", "x.example.test", "a.b.c.other.zone"):
        qlabels = tuple(label.encode() for label in qname.split("."))
        for target in ("h1.bench.example.test", "mail.example.test", "x.example.test",
                       "elsewhere.org", "m1.mail.example.test"):
            tlabels = tuple(label.encode() for label in target.split("."))
            rec = rules.Records()
            rec.answer.append((qlabels, head_mx, (b"\x00\x0a", tlabels)))
            rec.additional.append((tlabels, head_a, b"\x0a\x00\x00\x01"))
            glue_first = rules.Records()  # a glue owner as the first name (SRV-like)
            glue_first.answer.append((qlabels, head_a, b"\x0a\x00\x00\x02"))
            glue_first.additional.append((tlabels, head_a, b"\x0a\x00\x00\x01"))
            for r in (rec, glue_first):
                for opt in (b"", render.opt_record(1232, False)):
                    question = render.name_wire(qlabels) + b"\x00\x0f\x00\x01"
                    cases.append((r, question, qlabels, opt))
    render._firsts.clear()
    fresh = []
    for r, question, qlabels, opt in cases:
        render._firsts.clear()
        fresh.append(render.message(r, question, qlabels, 4096, False, opt))
    for _ in range(2):  # the first pass fills what is kept, the second reads it
        kept = [render.message(r, q, ql, 4096, False, opt) for r, q, ql, opt in cases]
        assert kept == fresh
    assert render._firsts
    for wire, (r, _, _, _) in zip(fresh, cases, strict=True):  # as a DNS library reads them
        reply = dns.message.from_wire(wire)
        names = [rrset.name.to_text() for rrset in reply.answer + reply.additional]
        assert names == [".".join(label.decode() for label in rr[0]) + "."
                         for rr in r.answer + r.additional]
