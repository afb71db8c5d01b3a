"""The answer rules seen through dnslib, for tests that assert on dnslib records: run the one
rule set (zone/rules.py), render the reply (wire/render.py) and read it back with dnslib into
an Answer (sections as dnslib RRs, plus what the rules read and picked). A test-side view,
not a second copy of the rules."""

from __future__ import annotations

import struct

from dnslib import DNSRecord

from dnsserver.wire.render import message, name_wire
from dnsserver.zone import rules
from dnsserver.zone.answer import Answer
from skydns.keys import name_to_path


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
