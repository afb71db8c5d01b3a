"""The zone as served (served.py, streamed by transfer.py, read back by rows.py): every name
that answers, with what a query for it gets, and a SOA serial that moves with health as well
as records."""

from __future__ import annotations

from test_engine import ask, make_engine

from dnsserver.zone.rows import served_rows, type_name
from dnsserver.zone.transfer import PAUSE, Snapshot

RECORDS = {
    "/skydns/test/example/web/a1": {"host": "10.1.0.1"},
    "/skydns/test/example/web/a2": {"host": "10.1.0.2"},
    "/skydns/test/example/alias/x": {"host": "web.example.test"},
    "/skydns/test/example/east/staging/s1": {"host": "10.2.0.1", "port": 80},
    "/skydns/test/example/east/staging/s2": {"host": "10.2.0.2", "port": 80},
    "/skydns/test/example/mail/mx1": {"host": "mx.out.test", "mail": True, "priority": 5},
    "/skydns/test/example/wild/*": {"host": "10.3.0.1"},
}


def zone(engine) -> set[str]:
    state = engine.state
    rows = [row for piece in served_rows(Snapshot(state, keep=False), state.zone.domain_path)
            if piece is not PAUSE for row in piece]
    assert type_name(rows[0].rtype) == "SOA"
    return {f"{row.name} {type_name(row.rtype)} {row.data}" for row in rows[1:]}


def test_aggregated_names_weights_cnames_and_wildcards():
    got = zone(make_engine(RECORDS))
    assert {"web.example.test. A 10.1.0.1", "web.example.test. A 10.1.0.2"} <= got
    assert "staging.east.example.test. SRV 10 50 80 s1.staging.east.example.test." in got
    assert "alias.example.test. CNAME web.example.test." in got
    assert not any(line.startswith("alias.example.test. A") for line in got)
    assert "mail.example.test. MX 5 mx.out.test." in got
    assert "*.wild.example.test. A 10.3.0.1" in got


def test_down_addresses_left_out_fail_open_kept():
    engine = make_engine(RECORDS)
    engine.state.set_health("10.1.0.2", "DOWN", 5)
    got = zone(engine)
    assert "web.example.test. A 10.1.0.1" in got and "web.example.test. A 10.1.0.2" not in got
    assert "a2.web.example.test. A 10.1.0.2" in got  # its only address: fail open


def test_serial_moves_with_health():
    engine = make_engine(RECORDS)
    first, _ = ask(engine, "example.test.", "SOA")
    again, hit = ask(engine, "example.test.", "SOA")
    assert hit and again.answer[0][0].serial == first.answer[0][0].serial == 1
    engine.state.set_health("10.1.0.2", "DOWN", 9)
    after, hit = ask(engine, "example.test.", "SOA")
    assert not hit and after.answer[0][0].serial == 9
    engine.state.set_health("10.1.0.2", "UP", 3)  # never backwards
    assert engine.state.serial == 9


def test_one_walk_per_name_and_owner_written_once_change_nothing():
    """The transfer's shortcuts (rules.answer's `below`: the records it read for the name;
    name_wire: the owner's bytes made once) give what the plain way gives, at every name
    of a table of shapes (a text of several strings, a CNAME beside data, DOWN addresses,
    duplicates)."""
    from test_zonerows import RICH, make_state

    from dnsserver.zone.served import name_records, name_wire, wires
    from skydns.keys import key_to_path

    records = {**RICH, "/skydns/test/example/big/t": {"text": "x" * 600}}
    state = make_state(records)
    paths = {key_to_path(key)[:n] for key in records
             for n in range(3, len(key_to_path(key)) + 1)}
    assert len(paths) > 40
    for path in sorted(paths):
        if "*" in path or path[:1] != ("test",):
            continue
        owner = tuple(label.encode() for label in reversed(path))
        plain_way = name_records(state, path, owner=owner)
        assert name_records(state, path, owner=owner, below=state.index.below(path)) == plain_way
        plain_wires = wires(plain_way[0])
        assert name_wire(owner, plain_way[0]) == (b"".join(plain_wires), len(plain_wires)), path


def test_transfer_forms_equal_the_plain_way():
    """What the transfer takes its short ways to (served.name_wire: a name's records joined
    once; name_answers' types: from the questions answered; the walk's owner labels: its
    parent's with its own label in front) equals the plain way at every name of a table of
    shapes, a name near the length limit included."""
    from test_zonerows import RICH, make_state

    from dnsserver.zone.rules import path_labels
    from dnsserver.zone.served import ALL, name_answers, name_records, name_wire, rtype_of, wires
    from skydns.keys import key_to_path

    records = {**RICH, "/skydns/test/example/big/t": {"text": "x" * 600},
               "/skydns/test/example/two/a": {"host": "10.7.0.1"},
               "/skydns/test/example/two/b": {"host": "10.7.0.1", "port": 80},
               "/skydns/test/example/" + "/".join(["d" * 60] * 3) + "/x": {"host": "10.7.0.3"}}
    state = make_state(records)
    paths = {key_to_path(key)[:n] for key in records
             for n in range(3, len(key_to_path(key)) + 1)}
    for path in sorted(paths):
        if "*" in path or path[:1] != ("test",):
            continue
        owner = path_labels(path)
        rrs, extra = name_records(state, path, owner=owner)
        got = name_answers(state, path, ALL, [], owner, None)
        assert (got[0], got[1]) == (rrs, extra)
        assert got[2] == frozenset(map(rtype_of, rrs)), path
        plain_way = wires(rrs)
        assert name_wire(owner, rrs) == (b"".join(plain_way), len(plain_way)), path

    snapshot = Snapshot(state)
    walked = [(path, owner) for path, _, owner in snapshot._names(("test", "example"), None)
              if path is not None]
    assert len(walked) > 40
    for path, owner in walked:
        assert owner == path_labels(path), path
