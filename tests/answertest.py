"""The answer rules seen through dnslib, for tests that assert on dnslib records: run the one
rule set (zone/rules.py), render the reply (wire/render.py) and read it back with dnslib into
an Answer (sections as dnslib RRs, plus what the rules read and picked). A test-side view,
not a second copy of the rules."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from dnslib import RCODE, DNSRecord

from dnsserver.wire.render import message, name_wire
from dnsserver.zone import rules
from skydns.keys import name_to_path


@dataclass(slots=True)
class Answer:
    """A reply's sections as dnslib records and what the rules read and picked."""

    rcode: int = RCODE.NOERROR
    answer: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)
    paths: set = field(default_factory=set)  # index paths read: a change at or below any of them
    ips: set = field(default_factory=set)  # addresses whose health was read
    soa: bool = False  # carries the SOA (its serial moves with every zone change)
    pick_from: int = -1  # answer[pick_from:] are alternative address records, or -1
    picks: list = field(default_factory=list)  # the addresses of those records, same order
    external: tuple | None = None  # (name, qtype): an out-of-zone CNAME target still to resolve
    fail_open: bool = False  # every address was DOWN, all were returned


def answer(ctx, qname: str, qtype: int) -> Answer:
    path = name_to_path(qname)
    qlabels = rules.path_labels(path)
    r = rules.answer(ctx, path, qtype, qlabels)
    question = name_wire(qlabels) + struct.pack("!HH", qtype, 1)
    reply = DNSRecord.parse(message(r, question, qlabels, 65535, False, b""))
    ans = Answer(rcode=r.rcode, answer=reply.rr, authority=reply.auth, additional=reply.ar,
                 paths=r.paths, ips=r.ips, soa=r.soa, pick_from=r.pick_from, picks=r.picks,
                 fail_open=r.fail_open)
    if r.external is not None:
        labels, ext_type = r.external
        ans.external = (".".join(label.decode() for label in labels) + ".", ext_type)
    return ans
