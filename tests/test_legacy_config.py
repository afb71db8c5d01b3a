"""The original suite's spellings and units (skydns/legacy.py), SkyDNS2's environment variables
and /skydns/config (skydns/skydns2.py), and config errors that name the program."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from skydns.config import ConfigError, load_config, load_config_warnings
from skydns.skydns2 import apply_runtime_settings

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL = ROOT / "tests" / "data" / "original"
NO_ENV: dict = {}


def load(tmp_path, text: str, kind: str, environ=NO_ENV):
    path = tmp_path / "x.conf"
    path.write_text(text)
    return load_config_warnings(str(path), kind, environ)


def error(tmp_path, text: str, kind: str, environ=NO_ENV) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, kind, environ)
    return str(info.value)


# --------------------------------------------------------------------------- the README's files


@pytest.mark.parametrize("name,kind", [("skydns.conf", "dns"), ("skydns-api.conf", "api"),
                                       ("skydns-scanner.conf", "scanner"),
                                       ("skydns-schedule.conf", "schedule")])
def test_the_original_readme_files_load(name, kind):
    cfg, _ = load_config_warnings(str(ORIGINAL / name), kind, NO_ENV)
    assert cfg["Log"]["log-level"] == "debug"  # glog verbosity 2 / 100
    assert cfg["Etcd"]["etcd-servers"] == ["http://127.0.0.1:2379"]


def test_scanner_file_keeps_its_meaning():
    cfg, warnings = load_config_warnings(str(ORIGINAL / "skydns-scanner.conf"), "scanner", NO_ENV)
    assert cfg["Check"]["ping-timeout"] == 1.0  # 1000 ms
    assert cfg["Check"]["scann-ports"] == [22, 80, 8080]
    assert cfg["General"]["heartbeat-interval"] == 30.0
    assert cfg["General"]["agent-downtime"] == 60.0  # outlives a missed beat
    assert cfg["Log"]["log-dir"] == "/export/log/skydns"
    assert cfg["Etcd"]["status-path"] == "/skydns/monitor/status/"
    assert [(w.section, w.key) for w in warnings] == [("General", "core")]
    assert "max-concurrency" in warnings[0].reason


def test_api_file_keeps_its_meaning():
    cfg, warnings = load_config_warnings(str(ORIGINAL / "skydns-api.conf"), "api", NO_ENV)
    assert cfg["General"]["domain"] == "hades.local."
    assert cfg["Etcd"]["status-path"] == "/hades/monitor/status/"
    assert cfg["Log"]["log-to-stdio"] is False and cfg["Log"]["log-dir"] == "/export/log/hades"
    assert cfg["SkydnsApi"]["api-enable"] is True  # YES
    assert cfg["SkydnsApi"]["skydns-auth"] == "123456789"
    assert cfg["Kube2Skydns"]["kube-enable"] is False  # NO: the sync is off, no warning
    assert [(w.section, w.key) for w in warnings] == [("General", "host")]


def test_schedule_file_warns_about_force_lock_time():
    cfg, warnings = load_config_warnings(str(ORIGINAL / "skydns-schedule.conf"), "schedule",
                                         NO_ENV)
    assert cfg["General"]["agent-downtime"] == 60.0
    assert cfg["Etcd"]["lock-path"] == "/skydns/monitor/lock/"
    assert len(warnings) == 1 and warnings[0].key == "force-lock-time"
    assert str(warnings[0]).endswith("lapses agent-downtime seconds after its holder dies")


# --------------------------------------------------------------------------- spellings, units


@pytest.mark.parametrize("level,expected", [("0", "info"), ("1", "debug"), ("100", "debug"),
                                            ("warning", "warning")])
def test_numeric_log_level_is_glog_verbosity(tmp_path, level, expected):
    cfg, _ = load(tmp_path, f"[Log]\nlog-level = {level}\n", "dns")
    assert cfg["Log"]["log-level"] == expected


def test_tls_spellings(tmp_path):
    for name in ("k.pem", "c.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    cfg, _ = load(tmp_path, "[Etcd]\netcd-machine = https://127.0.0.1:2379, https://[::1]:2379\n"
                  "tls-key = k.pem\ntls-pem = c.pem\nca-cert = ca.pem\n", "scanner")
    etcd = cfg["Etcd"]
    assert etcd["etcd-servers"] == ["https://127.0.0.1:2379", "https://[::1]:2379"]
    assert (etcd["etcd-keyfile"], etcd["etcd-certfile"], etcd["etcd-cafile"]) == (
        str(tmp_path / "k.pem"), str(tmp_path / "c.pem"), str(tmp_path / "ca.pem"))


def test_both_spellings_of_one_key_is_an_error(tmp_path):
    message = error(tmp_path, "[Etcd]\netcd-machine = http://a:1\netcd-servers = http://b:1\n",
                    "schedule")
    assert "[Etcd] etcd-machine: set twice: also as [Etcd] etcd-servers" in message


def test_legacy_values_are_validated_under_the_canonical_key(tmp_path):
    message = error(tmp_path, "[General]\netcd-server = 127.0.0.1:2379\n", "api")
    assert "[Etcd] etcd-servers: " in message and "http://host:port" in message


def test_original_keys_only_where_they_belong(tmp_path):
    # `core` is the scanner's; the scheduler never had it
    assert "[General] core: unknown key" in error(tmp_path, "[General]\ncore = 0\n", "schedule")


def test_ping_timeout_units(tmp_path):
    # in an original file (any original spelling in it): whole milliseconds
    cfg, _ = load(tmp_path, "[General]\ncore = 2\n[Check]\nping-timeout = 250\n", "scanner")
    assert cfg["Check"]["ping-timeout"] == 0.25
    cfg, _ = load(tmp_path, "[Log]\nlog-level = 0\n[Check]\nping-timeout = 0.5\n", "scanner")
    assert cfg["Check"]["ping-timeout"] == 0.5  # a fraction is already seconds
    # canonical file: seconds, and 1000 is not silently 1000 seconds
    cfg, _ = load(tmp_path, "[Check]\nping-timeout = 2\n", "scanner")
    assert cfg["Check"]["ping-timeout"] == 2.0
    message = error(tmp_path, "[Check]\nping-timeout = 1000\n", "scanner")
    assert "[Check] ping-timeout: 1000 seconds is far too long" in message
    assert "write 1" in message


def test_kube_enable_yes_is_true(tmp_path):
    path = tmp_path / "api.conf"
    path.write_text("[Kube2Skydns]\nkube-enable = YES\nkube-master = http://127.0.0.1:8001\n")
    cfg, warnings = load_config_warnings(str(path), "api", NO_ENV)
    assert cfg["Kube2Skydns"]["kube-enable"] is True and warnings == []


def test_canonical_files_have_no_warnings():
    for name, kind in (("skydns.conf", "dns"), ("skydns-api.conf", "api"),
                       ("skydns-scanner.conf", "scanner"), ("skydns-schedule.conf", "schedule")):
        _, warnings = load_config_warnings(str(ROOT / "etc" / name), kind, NO_ENV)
        assert warnings == []


# --------------------------------------------------------------------------- program names


@pytest.mark.parametrize("module,program,text", [
    ("scanner", "skydns-scanner", "[General]\ncore = x\nheartbeat-interval = soon\n"),
    ("scheduler", "skydns-schedule", "[General]\nschedule-interval = -1\n"),
    ("kubeapi", "skydns-kubeapi", "[SkydnsApi]\nmax-body = 0\n"),
    ("dnsserver", "skydns", "[Dns]\ndns-addr = 127.0.0.1:70000\n"),
])
def test_config_errors_name_the_program(tmp_path, module, program, text):
    path = tmp_path / "x.conf"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", module, "--config-file", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "config error" in line]
    assert errors and errors[0].startswith(f"{program}: config error: {path}: "), done.stderr


def test_warning_is_one_line_naming_the_program(tmp_path):
    path = tmp_path / "x.conf"
    path.write_text("[General]\nforce-lock-time = 1800\n")
    code = f"from skydns.config import load_or_exit; load_or_exit({str(path)!r}, 'schedule')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        f"skydns-schedule: config warning: {path}: [General] force-lock-time: ignored: it "
        "broke a stale scheduler lock after that many seconds; leadership is now an etcd "
        "lease that lapses agent-downtime seconds after its holder dies"]


# --------------------------------------------------------------------------- environment


ENV = {"ETCD_MACHINES": "http://127.0.0.2:2379,http://127.0.0.3:2379",
       "SKYDNS_ADDR": "127.0.0.1:5354", "SKYDNS_DOMAIN": "Env.Example",
       "SKYDNS_NAMESERVERS": "127.0.0.53:53,127.0.0.54"}


def test_environment_fills_unset_settings(tmp_path):
    cfg, _ = load(tmp_path, "[Dns]\nnameservers = \"\"\n", "dns", ENV)
    assert cfg["Etcd"]["etcd-servers"] == ["http://127.0.0.2:2379", "http://127.0.0.3:2379"]
    assert cfg["Dns"]["dns-addr"] == ("127.0.0.1", 5354)
    assert cfg["Dns"]["dns-domain"] == "env.example."
    assert cfg["Dns"]["nameservers"] == [("127.0.0.53", 53), ("127.0.0.54", 53)]
    # other programs take the etcd variables, not the DNS server's
    cfg, _ = load(tmp_path, "", "scanner", ENV)
    assert cfg["Etcd"]["etcd-servers"] == ["http://127.0.0.2:2379", "http://127.0.0.3:2379"]


def test_the_file_wins_over_the_environment(tmp_path):
    cfg, _ = load(tmp_path, "[Dns]\ndns-addr = 127.0.0.1:53\ndns-domain = file.test\n"
                  "[Etcd]\netcd-servers = http://127.0.0.9:2379\n", "dns", ENV)
    assert cfg["Dns"]["dns-addr"] == ("127.0.0.1", 53)
    assert cfg["Dns"]["dns-domain"] == "file.test."
    assert cfg["Etcd"]["etcd-servers"] == ["http://127.0.0.9:2379"]


def test_a_bad_environment_value_names_the_variable(tmp_path):
    message = error(tmp_path, "", "dns", {"SKYDNS_ADDR": "127.0.0.1:99999"})
    assert "[Dns] dns-addr: " in message and "environment variable SKYDNS_ADDR" in message


def test_tls_files_from_the_environment(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    cfg, _ = load(tmp_path, "", "api", {"ETCD_CACERT": str(tmp_path / "ca.pem")})
    assert cfg["Etcd"]["etcd-cafile"] == str(tmp_path / "ca.pem")


# --------------------------------------------------------------------------- /skydns/config


def test_runtime_settings_override_the_file():
    cfg = load_config(None, "dns", NO_ENV)
    raw = json.dumps({"dns_addr": "127.0.0.1:5399", "domain": "skydns2.test", "ttl": 60,
                      "min_ttl": 5, "nameservers": ["127.0.0.53:53"], "local": "me.skydns2.test",
                      "hostmaster": "admin@skydns2.test.", "round_robin": False})
    new, problems = apply_runtime_settings(cfg, raw)
    assert problems == []
    dns = new["Dns"]
    assert dns["dns-addr"] == ("127.0.0.1", 5399) and dns["dns-domain"] == "skydns2.test."
    assert (dns["ttl"], dns["min-ttl"]) == (60, 5)
    assert dns["nameservers"] == [("127.0.0.53", 53)]
    assert dns["local"] == "me.skydns2.test." and dns["hostmaster"] == "admin.skydns2.test."
    assert dns["round-robin"] is False
    assert cfg["Dns"]["ttl"] == 30  # the original is left as it was


@pytest.mark.parametrize("raw,problem", [
    (b"{not json", "not valid JSON"),
    (b"[1]", "not a JSON object"),
    (b'{"ttl": "sixty"}', "ttl: expected a whole number"),
    (b'{"ttl": -1}', "ttl: expected a whole number"),
    (b'{"domain": "bad..name"}', "domain: "),
    (b'{"nameservers": "127.0.0.1"}', "nameservers: expected a list"),
    (b'{"nameservers": ["dns.example"]}', "nameservers: "),
    (b'{"round_robin": "yes"}', "round_robin: expected true or false"),
    (b'{"rcache": 5}', "rcache: not a setting this server takes"),
])
def test_bad_runtime_settings_are_reported_and_ignored(raw, problem):
    cfg = load_config(None, "dns", NO_ENV)
    new, problems = apply_runtime_settings(cfg, raw)
    assert len(problems) == 1 and problem in problems[0], problems
    assert new["Dns"]["ttl"] == 30


def test_good_runtime_settings_apply_beside_bad_ones():
    cfg = load_config(None, "dns", NO_ENV)
    new, problems = apply_runtime_settings(cfg, b'{"ttl": 77, "min_ttl": "x"}')
    assert new["Dns"]["ttl"] == 77 and new["Dns"]["min-ttl"] == 30 and len(problems) == 1


def test_original_spellings_only_in_the_files_that_had_them(tmp_path):
    # the original DNS server had no [General] section and spelled etcd-servers canonically
    assert "unknown section" in error(tmp_path, "[General]\nlog-dir = /tmp\n", "dns")
    assert "[Etcd] etcd-machine: unknown key" in error(
        tmp_path, "[Etcd]\netcd-machine = http://127.0.0.1:2379\n", "dns")
    # the API spelled its etcd servers in [General]
    assert "[Etcd] etcd-machine: unknown key" in error(
        tmp_path, "[Etcd]\netcd-machine = http://127.0.0.1:2379\n", "api")
