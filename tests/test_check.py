"""`skydns check`: every error of every config file, and the lints of the data in a real etcd
(dnsserver/lint.py), one line per finding, exit 1 when there is any."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dnsserver.check import kind_of
from dnsserver.lint import lint

from dnstest import ROOT, write_config

ZONE = "example.test."
STATUS = "/skydns/monitor/status/"


def _check(*argv: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "dnsserver", "check", *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def test_the_samples_are_clean():
    code, out, err = _check("--config-dir", str(ROOT / "etc"))
    assert (code, out) == (0, ""), err
    assert "0 problems" in err


BAD_CONFIGS = [
    # (file name, text, the lines expected, all of them: not only the first)
    ("skydns.conf",
     "[Dns]\ndns-addr = 127.0.0.1:70000\ncachesize = 5\nttl = -1\n"
     "[Fun]\nrandom-one = true\nhone-one = true\n[Bogus]\nx = 1\n",
     ["[Dns] dns-addr: port 70000 out of range 1-65535",
      "[Dns] cachesize: unknown key (did you mean 'cacheSize'?)",
      "[Dns] ttl: -1 out of range",
      "[Fun] hone-one: random-one and hone-one cannot both be true",
      "[Bogus] unknown section"]),
    ("skydns-scanner.conf",
     "[General]\nheartbeat-interval = 5\nagent-downtime = 3\n[Check]\nrise = 0\nfall = x\n",
     ["[Check] rise: 0 is less than the minimum 1", "[Check] fall:",
      "[General] heartbeat-interval: must be shorter than agent-downtime"]),
    ("skydns-api.conf",
     "[SkydnsApi]\napi-address = 127.0.0.1:99999\nskydns-auth = t1\n"
     "[Tokens]\nadmin = t2\nbob = t1\n",
     ["[SkydnsApi] api-address:", "[Tokens] admin:", "[Tokens] bob: same token as"]),
    ("skydns-janitor.conf", "[Janitor]\nrecursors = ftp://x\ncoalesce = -1\n",
     ["[Janitor] recursors:", "[Janitor] coalesce:"]),
    ("skydns-schedule.conf", "stray = 1\n[General]\nschedule-interval = 0\n",
     ["stray: setting outside any [Section]", "[General] schedule-interval:"]),
    ("skydns.conf", "[Dns\n", ["line 1:"]),  # does not parse: one error, no more to say
]


@pytest.mark.parametrize("name,text,expected", BAD_CONFIGS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CONFIGS)])
def test_bad_configs_report_every_error(tmp_path: Path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    code, out, _ = _check("--config-dir", str(tmp_path))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == len(expected), out
    for want in expected:
        assert any(line.startswith(f"skydns check: {path}: ") and want in line
                   for line in lines), (want, out)
    code, out, _ = _check("--config-file", str(path), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert len(report["findings"]) == len(expected)
    assert {f["file"] for f in report["findings"]} == {str(path)}


def test_kind_from_name_or_sections(tmp_path: Path):
    other = tmp_path / "mine.ini"
    other.write_text("# scanner\n[Check]\nrise = 2\n")
    assert kind_of(other) == "scanner"
    assert kind_of(tmp_path / "prod-skydns-api.conf") == "api"
    assert kind_of(tmp_path / "skydns.conf") == "dns"


# --- etcd --------------------------------------------------------------------------------------

BAD_DATA = [
    # (what is in etcd, the (key, code) findings expected)
    ({"/skydns/test/example/x/a": "{not json", STATUS + "10.0.0.9": {"status": "UP"}},
     [("/skydns/test/example/x/a", "bad-record"), (STATUS + "10.0.0.9", "orphan-status")]),
    # The README's old example: `*` in the middle gives `www` an address beside its CNAME.
    ({"/skydns/test/example/web/a": {"host": "10.0.0.1"},
      "/skydns/test/example/www/x": {"host": "web.example.test"},
      "/skydns/test/example/*/wild": {"host": "10.0.3.1"},
      STATUS + "10.0.0.1": {"status": "UP"}, STATUS + "10.0.3.1": {"status": "UP"}},
     [("/skydns/test/example/*/wild", "wildcard-middle"),
      ("/skydns/test/example/www/x", "cname-and-address")]),
    ({"/skydns/test/example/www/x": {"host": "nowhere.example.test"},
      "/skydns/test/example/db/1": {"host": "gone.example.test", "port": 5432},
      "/skydns/test/example/mail/m": {"host": "mx.example.test", "mail": True},
      "/skydns/test/example/ext/x": {"host": "www.example.org"}},  # outside: not ours to say
     [("/skydns/test/example/www/x", "missing-target"),
      ("/skydns/test/example/db/1", "missing-target"),
      ("/skydns/test/example/mail/m", "missing-target")]),
    ({"/skydns/test/example/web/a": {"host": "10.0.0.1"},
      "/skydns/test/example/web/b": {"host": "10.0.0.2"},
      STATUS + "10.0.0.1": {"status": "maybe"}},
     [(STATUS + "10.0.0.1", "bad-status"), ("/skydns/test/example/web/b", "no-status")]),
    # Without health checks at all: a warning only (exit 0), as addresses without one are UP.
    ({"/skydns/test/example/web/a": {"host": "10.0.0.1"}},
     [("/skydns/test/example/web/a", "no-status")]),
    # All well: a stored wildcard as the first label, an API-style wildcard, SRV by name.
    ({"/skydns/test/example/wild/*": {"host": "10.0.3.1"},
      "/skydns/test/example/api/*/1a2b3c4d": {"host": "10.0.0.1", "type": "A"},
      "/skydns/test/example/db/1": {"host": "10.0.0.1", "port": 5432},
      "/skydns/test/example/db/3": {"host": "db3.example.test", "port": 5432},
      "/skydns/test/example/db3/x": {"host": "10.0.0.3"},
      "/skydns/config": {"ttl": 60},
      STATUS + "10.0.3.1": {"status": "UP"}, STATUS + "10.0.0.1": {"status": "DOWN"},
      STATUS + "10.0.0.3": {"ports": [80]}},
     []),
]


@pytest.mark.parametrize("data,expected", BAD_DATA, ids=range(len(BAD_DATA)))
def test_etcd_lints(etcd, tmp_path: Path, data, expected):
    etcd.put_many(data)
    conf = write_config(tmp_path / "skydns.conf", etcd.endpoint, 53)
    code, out, err = _check("--config-file", str(conf), "--etcd", "--json")
    report = json.loads(out)
    found = sorted((f["key"], f["code"]) for f in report["findings"])
    assert found == sorted(expected), json.dumps(report, indent=1)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert {f["code"] for f in report["findings"] if f["severity"] == "warning"} <= {"no-status"}
    assert code == (1 if errors else 0) and report["ok"] is not errors
    code, out, _ = _check("--config-file", str(conf), "--etcd")
    assert len(out.splitlines()) == len(expected)
    for key, what in expected:  # one line each, naming the key and what to do
        label = "warning: " if what == "no-status" else ""
        assert any(line.startswith(f"skydns check: {label}{key}: ") and "; " in line
                   for line in out.splitlines()), out


def test_wildcard_finding_says_where_it_goes():
    [finding] = [f for f in lint([("/skydns/local/skydns/*/wild", b'{"host":"10.0.3.1"}')],
                                 [], "skydns.local.", STATUS) if f.code == "wildcard-middle"]
    assert "/skydns/local/skydns/wild/*" in finding.fix


def test_etcd_unreachable_is_one_finding(tmp_path: Path):
    conf = write_config(tmp_path / "skydns.conf", "http://127.0.0.1:1", 53,
                        Etcd={"etcd-timeout": 0.5})
    code, out, _ = _check("--config-file", str(conf), "--etcd")
    assert code == 1
    assert out.startswith("skydns check: etcd: cannot read etcd at http://127.0.0.1:1")
