"""The pure parts of confirmations (scanner/confirm.py) and of isolation (scanner/isolation.py):
plain values, no etcd, no sockets."""

import json

import pytest

from scanner.confirm import (
    CONFIRMED,
    DISAGREED,
    UNANSWERED,
    Confirmation,
    Request,
    Verdict,
    candidates,
    demote,
    parse_key,
    probe_budget,
    read_request,
    read_verdict,
    render_request,
    render_verdict,
    request_key,
    verdict_key,
)
from scanner.isolation import ENTER, LEAVE, Isolation
from scanner.status import read_status, render_status
from skydns.checks import parse_check
from skydns.health import heart_isolation, scanner_warnings
from skydns.rendezvous import weight

P = "/skydns/monitor/confirm/"


# --- keys and values ---------------------------------------------------------------------------


@pytest.mark.parametrize("key, parsed", [
    (P + "10.0.0.5/scan-a", ("10.0.0.5", "scan-a", None)),
    (P + "10.0.0.5/scan-a/scan-b", ("10.0.0.5", "scan-a", "scan-b")),
    (P + "2001:db8::1/scan-a", ("2001:db8::1", "scan-a", None)),
    (P + "2001:DB8::1/scan-a", None),  # not canonical: no key of ours is spelled so
    (P + "10.0.0.5", None),
    (P + "10.0.0.5/", None),
    (P + "10.0.0.5/a/b/c", None),
    (P + "not-an-ip/scan-a", None),
    ("/elsewhere/10.0.0.5/scan-a", None),
])
def test_parse_key(key, parsed):
    assert parse_key(P, key) == parsed


def test_keys_round_trip():
    assert parse_key(P, request_key(P, "10.0.0.5", "a")) == ("10.0.0.5", "a", None)
    assert parse_key(P, verdict_key(P, "10.0.0.5", "a", "b")) == ("10.0.0.5", "a", "b")


def test_request_round_trip_carries_the_same_checks():
    check = parse_check({"http": "/healthz", "port": 8080, "expect": "200", "timeout": 1.5})
    req = Request("abc", ("scan-b",), "10.0.0.5", (80, 443), (check,))
    assert read_request(render_request(req)) == req


@pytest.mark.parametrize("value", [
    b"not json", b"[]", b'{"ask": ["b"], "address": "10.0.0.5"}',  # no id
    b'{"id": "x", "ask": "b", "address": "10.0.0.5"}',  # ask not a list
    b'{"id": "x", "ask": ["b"], "address": "somewhere"}',  # not an address
    json.dumps({"id": "x" * 100, "ask": ["b"], "address": "10.0.0.5"}).encode(),
])
def test_bad_requests_are_none(value):
    assert read_request(value) is None


def test_request_keeps_only_usable_parts():
    req = read_request(json.dumps({
        "id": "x", "ask": ["b", 7, "", "a/b", "c"], "address": "10.0.0.5",
        "ports": [80, "x", 70000, 443], "checks": [{"http": "/"}, {"nonsense": 1}]}).encode())
    assert req.ask == ("b", "c") and req.ports == (80, 443) and len(req.checks) == 1


def test_verdict_round_trip_and_bad_values():
    v = Verdict("abc", False, "no answer: tcp 80")
    assert read_verdict(render_verdict(v)) == v
    assert read_verdict(render_verdict(Verdict("abc", True))) == Verdict("abc", True)
    for bad in (b"x", b'{"id": "a"}', b'{"id": "a", "ok": "yes"}', b'{"ok": true}'):
        assert read_verdict(bad) is None


def test_confirmedby_exactly_on_a_confirmed_down():
    down = json.loads(render_status({"ports": [80]}, "DOWN", "a", confirmedby=("b", "c")))
    assert down["confirmedby"] == ["b", "c"] and down["ports"] == [80]
    alone = json.loads(render_status(down, "DOWN", "a"))
    assert "confirmedby" not in alone
    up = json.loads(render_status(down, "UP", "a"))
    assert "confirmedby" not in up and up["status"] == "UP"
    assert read_status(render_status(down, "DOWN", "a", confirmedby=["b"])).status == "DOWN"


def test_heart_isolation():
    assert heart_isolation(b'{"hostname": "a"}') is None
    assert heart_isolation(b'{"hostname": "a", "isolated": false}') is None
    assert heart_isolation(b'{"isolated": true, "isolation": "3 of 3 fail"}') == "3 of 3 fail"
    assert heart_isolation(b'{"isolated": true}') == "isolated"
    assert heart_isolation(b'{"isolated": "yes"}') is None  # only JSON true
    assert heart_isolation(b"garbage") is None  # unreadable: counts as working


# --- whom to ask ------------------------------------------------------------------------------


def test_candidates_exclude_me_and_follow_rendezvous_rank():
    live = ["s1", "s2", "s3", "s4"]
    ranked = candidates("10.0.0.5", live, "s2")
    assert "s2" not in ranked and sorted(ranked) == ["s1", "s3", "s4"]
    weights = [weight("10.0.0.5", name) for name in ranked]
    assert weights == sorted(weights, reverse=True)
    # Stable: the same input gives the same order, whatever the order of `live`.
    assert candidates("10.0.0.5", reversed(live), "s2") == ranked
    assert candidates("10.0.0.5", ["s2"], "s2") == []


def test_candidates_spread_over_addresses():
    firsts = {candidates(f"10.0.{i // 256}.{i % 256}", ["a", "b", "c", "d"], "a")[0]
              for i in range(200)}
    assert firsts == {"b", "c", "d"}  # every other scanner is somebody's first choice


def test_silent_scanners_are_asked_last():
    assert demote(["a", "b", "c", "d"], ["b", "zz"]) == ["a", "c", "d", "b"]
    assert demote(["a", "b"], []) == ["a", "b"]
    c = Confirmation(["b", "c"], need=1, timeout=1.0, now=0.0)
    c.expire(1.0)
    assert c.silent == ["b"]


def test_probe_budget_is_the_slowest_probe():
    slow = parse_check({"http": "/", "port": 80, "timeout": 4})
    fast = parse_check({"http": "/", "port": 80})
    assert probe_budget([80], [], 2.0, 0.0) == 2.0
    assert probe_budget([], [], 2.0, 1.0) == 1.0
    assert probe_budget([80], [slow], 2.0, 0.0) == 4.0
    assert probe_budget([], [fast], 3.0, 0.0) == 3.0


# --- one request ------------------------------------------------------------------------------


def test_confirmed_by_the_one_asked():
    c = Confirmation(["b", "c", "d"], need=1, timeout=2.0, now=0.0)
    assert c.ask == ("b",) and c.outcome is None and c.next_deadline == 2.0
    assert c.answer("b", False, 0.1, "no answer: tcp 80")
    assert c.outcome == CONFIRMED and c.down == ["b"] and c.reasons["b"] == "no answer: tcp 80"


def test_one_that_reaches_it_settles_it_as_disagreed():
    c = Confirmation(["b", "c", "d"], need=2, timeout=2.0, now=0.0)
    assert c.ask == ("b", "c")
    c.answer("b", False, 0.1)
    assert c.outcome is None
    c.answer("c", True, 0.2)
    assert c.outcome == DISAGREED and c.up == ["c"]


def test_answers_from_strangers_and_repeats_are_ignored():
    c = Confirmation(["b", "c"], need=1, timeout=2.0, now=0.0)
    assert not c.answer("c", False, 0.1)  # never asked
    assert not c.answer("zz", False, 0.1)
    assert c.answer("b", False, 0.1) and not c.answer("b", True, 0.2)
    assert c.outcome == CONFIRMED


def test_silent_confirmer_is_replaced_after_the_timeout():
    c = Confirmation(["b", "c", "d"], need=1, timeout=2.0, now=0.0)
    assert not c.expire(1.9) and c.ask == ("b",)
    assert c.expire(2.0) and c.ask == ("c",) and c.timeouts == 1
    assert c.next_deadline == 4.0
    assert c.expire(4.5) and c.ask == ("d",)
    assert c.expire(7.0) and c.ask == () and c.outcome == UNANSWERED


def test_late_answer_of_a_replaced_confirmer_still_counts():
    c = Confirmation(["b", "c"], need=1, timeout=2.0, now=0.0)
    c.expire(2.0)
    assert c.ask == ("c",)
    assert c.answer("b", False, 2.5)  # b was slow, not dead
    assert c.outcome == CONFIRMED and c.ask == ()  # c is no longer waited for


def test_gone_confirmer_is_replaced_at_once():
    c = Confirmation(["b", "c"], need=1, timeout=2.0, now=0.0)
    assert c.gone("b", 0.3) and c.ask == ("c",) and c.next_deadline == 2.3
    assert not c.gone("zz", 0.3)
    assert c.gone("c", 0.4) and c.outcome == UNANSWERED


def test_need_is_capped_by_who_is_there():
    c = Confirmation(["b"], need=3, timeout=1.0, now=0.0)
    assert c.need == 1 and c.ask == ("b",)
    c.answer("b", False, 0.1)
    assert c.outcome == CONFIRMED
    with pytest.raises(ValueError):
        Confirmation(["b"], need=0, timeout=1.0, now=0.0)


# --- isolation --------------------------------------------------------------------------------


def failing(n_fail, n_ok, n_unknown=0):
    return [False] * n_fail + [True] * n_ok + [None] * n_unknown


def test_many_failures_alone_do_not_isolate():
    iso = Isolation(0.5, window=10)
    assert iso.evaluate(failing(10, 0), now=0) is None  # no confirmation yet
    iso.note_confirmation(True, now=1)  # others agree: a real outage
    iso.note_confirmation(True, now=1)
    iso.note_confirmation(False, now=1)
    assert iso.evaluate(failing(10, 0), now=2) is None and not iso.isolated


def test_failures_that_others_disagree_with_isolate():
    iso = Isolation(0.5, window=10)
    iso.note_confirmation(False, now=1)
    assert iso.evaluate(failing(5, 5), now=2) is None  # half is not more than half
    assert iso.evaluate(failing(6, 4), now=2) == ENTER
    assert iso.isolated and "6 of 10 addresses fail" in iso.reason


def test_a_disagreement_about_few_addresses_is_about_those():
    iso = Isolation(0.5, window=10)
    iso.note_confirmation(False, now=1)
    assert iso.evaluate(failing(1, 9), now=2) is None


def test_old_disagreements_expire():
    iso = Isolation(0.5, window=10)
    iso.note_confirmation(False, now=0)
    assert iso.evaluate(failing(10, 0), now=11) is None
    assert iso.recent(11) == (0, 0)


def test_unknown_results_count_for_neither():
    iso = Isolation(0.5, window=10)
    iso.note_confirmation(False, now=0)
    assert iso.evaluate(failing(2, 1, n_unknown=50), now=1) == ENTER


def test_leaves_when_most_answer_for_leave_after_rounds():
    iso = Isolation(0.5, window=10, leave_after=2)
    iso.note_confirmation(False, now=0)
    assert iso.evaluate(failing(10, 0), now=1) == ENTER
    assert iso.evaluate(failing(6, 4), now=2) is None  # most still fail
    assert iso.evaluate(failing(5, 5), now=3) is None  # half: not most
    assert iso.evaluate(failing(2, 8), now=4) is None  # once
    assert iso.evaluate(failing(6, 4), now=5) is None  # streak broken
    assert iso.evaluate(failing(2, 8), now=6) is None
    assert iso.evaluate(failing(0, 10), now=7) == LEAVE
    assert not iso.isolated and iso.reason is None
    assert iso.recent(7) == (0, 0)  # judged afresh afterwards


def test_threshold_one_never_isolates():
    iso = Isolation(1.0, window=10)
    iso.note_confirmation(False, now=0)
    assert iso.evaluate(failing(10, 0), now=1) is None
    with pytest.raises(ValueError):
        Isolation(0, window=1)


def test_warnings_about_the_live_scanners():
    assert scanner_warnings({"a": None, "b": None}) == []
    assert scanner_warnings({"a": None, "b": "cut off"}) == [
        "one live scanner (a) (1 more isolated): nobody can confirm its failures, it writes "
        "DOWN alone; run scanners on several hosts"]
    assert scanner_warnings({"a": "cut off"})[0].startswith("no live scanner that can probe")
    assert scanner_warnings({})[0].startswith("no live scanner")
