"""querycheck: bounded-work reading of untrusted queries (issue 18, item 1), no sockets."""

from __future__ import annotations

import random
import time

import pytest
from hostile import (
    header,
    long_label,
    long_name,
    mutate,
    pointer_bomb,
    query,
    question_pointer_bomb,
    wire_name,
)

from dnsserver.wire.message import FormErr, parse_query
from dnsserver.wire.querycheck import Malformed, check_query


def test_plain_and_edns_queries():
    q = check_query(query("Www.Example.Test.", 28, qid=7))
    assert (q.id, q.labels, q.qtype, q.qclass, q.edns) == (7, (b"Www", b"Example", b"Test"), 28,
                                                          1, False)
    q = check_query(query("a.test.", 1, opt=True))
    assert q.edns and q.edns_size == 1232 and not q.do and q.edns_version == 0
    assert parse_query(query("A.Test.")).qname == "a.test."


def _rcode(data):
    with pytest.raises(Malformed) as err:
        check_query(data)
    return err.value.rcode


@pytest.mark.parametrize(
    "data, rcode",
    [
        (b"\x00" * 11, None),  # not a header
        (header(flags=0x8000) + wire_name("a.") + b"\x00\x01\x00\x01", None),  # a response
        (header(flags=0x2800) + wire_name("a.") + b"\x00\x01\x00\x01", 4),  # UPDATE: NOTIMP
        (header(qd=0), 1),
        (header(qd=2) + (wire_name("a.") + b"\x00\x01\x00\x01") * 2, 1),
        (header(an=1) + wire_name("a.") + b"\x00\x01\x00\x01", 1),
        (header(ns=1) + wire_name("a.") + b"\x00\x01\x00\x01", 1),
        (header(ar=2) + wire_name("a.") + b"\x00\x01\x00\x01", 1),
        (long_label(64), 1),
        (long_label(191), 1),
        (long_name(256), 1),
        (question_pointer_bomb(), 1),
        (header() + wire_name("a.") + b"\x00\x01", 1),  # question cut short
        (header(ar=1) + wire_name("a.") + b"\x00\x01\x00\x01" + b"\x00\x00\x29", 1),
        # OPT whose option runs past its rdata
        (query("a.") [:10] + b"\x00\x01" + query("a.")[12:]
         + b"\x00" + b"\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x08", 1),
        # OPT owned by a name other than the root
        (query("a.")[:10] + b"\x00\x01" + query("a.")[12:] + wire_name("x.")
         + b"\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", 1),
    ],
)
def test_malformed(data, rcode):
    assert _rcode(data) == rcode


def test_longest_legal_name_passes():
    name = ".".join(["a" * 63] * 3 + ["b" * 61]) + "."  # 4*64 - 2 + 1 = 255 octets on the wire
    assert len(wire_name(name)) == 255
    assert len(check_query(query(name)).labels) == 4
    assert _rcode(query(name.replace("b" * 61, "b" * 62))) == 1


def test_formerr_reply_echoes_the_id():
    with pytest.raises(FormErr) as err:
        parse_query(long_label(100))
    assert err.value.reply[:2] == b"\x12\x34" and err.value.reply[3] & 0xF == 1


def test_cpu_bomb_costs_under_a_millisecond():
    bomb = pointer_bomb()
    assert len(bomb) > 10_000
    start = time.perf_counter()
    for _ in range(1000):
        with pytest.raises(FormErr):
            parse_query(bomb)
    # bounded work, whatever the packet holds (about 1 us each here)
    assert time.perf_counter() - start < 5.0  # dnslib took 13 s for one


def test_mutated_queries_never_raise_anything_else():
    rng = random.Random(5)
    seeds = [query("h.example.test."), query("h.example.test.", 28, opt=True), pointer_bomb(50)]
    for _ in range(20_000):
        try:
            parse_query(mutate(rng.choice(seeds), rng))
        except FormErr:
            pass
