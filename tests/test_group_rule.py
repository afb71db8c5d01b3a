"""CoreDNS's `group` rule as a pure function (dnsserver.zone.rules.grouped); the same cases through
real queries are in test_skydns2_rules.py."""

import itertools
import json

import pytest

from dnsserver.zone.rules import grouped
from skydns.keys import key_to_path
from skydns.records import parse_record


def rec(key: str, group: str = ""):
    key = "/skydns/test/example/" + key
    value = {"host": "10.0.0.1", **({"group": group} if group else {})}
    return parse_record(key, key_to_path(key), json.dumps(value).encode())


def keys(records) -> list[str]:
    return sorted(r.key.removeprefix("/skydns/test/example/") for r in records)


@pytest.mark.parametrize("records,expected", [
    ([rec("d/a", "g1"), rec("d/s/b", "g1")], ["d/a", "d/s/b"]),
    ([rec("d/a", "g1"), rec("d/s/b")], ["d/a", "d/s/b"]),
    ([rec("d/a", "g1"), rec("d/s/b", "g2")], ["d/a"]),
    ([rec("d/a", "g1"), rec("d/b", "g2"), rec("d/s/c", "g1")], ["d/a", "d/b", "d/s/c"]),
    ([rec("d/a"), rec("d/s/b", "g1"), rec("d/s/c", "g2")], ["d/a", "d/s/b", "d/s/c"]),
    ([rec("d/a", "g1"), rec("d/b"), rec("d/s/c", "g2"), rec("d/s/e")], ["d/a", "d/b", "d/s/e"]),
    ([rec("d/a"), rec("d/b")], ["d/a", "d/b"]),
    ([], []),
])
def test_shortest_keys_name_the_group(records, expected):
    # the rule does not depend on the order the records come in
    for order in itertools.permutations(records):
        assert keys(grouped(list(order))) == expected
