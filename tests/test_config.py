"""skydns.config: samples, defaults, one-line errors naming file/section/key; no etcd needed."""

import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from skydns.config import (
    KINDS,
    ConfigError,
    load_config,
    parse_hostport,
    parse_subdomain_servers,
)
from skydns.logsetup import kv, setup_logging

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {
    "dns": "skydns.conf",
    "scanner": "skydns-scanner.conf",
    "schedule": "skydns-schedule.conf",
    "api": "skydns-api.conf",
    "janitor": "skydns-janitor.conf",
    "cloudstack": "skydns-cloudstack.conf",
}


def write(tmp_path, text: str, name: str = "skydns.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def config_error(tmp_path, text: str, kind: str = "dns") -> tuple[str, str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, kind)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return path, message


# --------------------------------------------------------------------------- samples, defaults


@pytest.mark.parametrize("kind", KINDS)
def test_sample_loads_and_has_every_key(kind):
    loaded = load_config(str(ROOT / "etc" / SAMPLES[kind]), kind)
    defaults = load_config(None, kind)
    assert loaded.keys() == defaults.keys()
    for section in defaults:
        assert loaded[section].keys() == defaults[section].keys(), section


@pytest.mark.parametrize("kind", KINDS)
def test_sample_lists_every_key_explicitly(kind):
    # The samples double as documentation, so every key of the spec must be written out.
    text = (ROOT / "etc" / SAMPLES[kind]).read_text()
    for section, keys in load_config(None, kind).items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"\n{key} =" in text, f"[{section}] {key} missing from {SAMPLES[kind]}"


def test_dns_sample_values():
    cfg = load_config(str(ROOT / "etc" / "skydns.conf"), "dns")
    assert cfg["Dns"]["dns-addr"] == ("127.0.0.1", 5353)
    assert cfg["Dns"]["dns-domain"] == "skydns.local."
    assert cfg["Dns"]["nameservers"] == []
    assert cfg["Dns"]["workers"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_samples_only_bind_loopback(kind):
    cfg = load_config(str(ROOT / "etc" / SAMPLES[kind]), kind)
    for section in cfg.values():
        for value in section.values():
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
                assert ipaddress.ip_address(value[0]).is_loopback, value


DEFAULTS = [
    ("dns", "Dns", "dns-domain", "skydns.local."),
    ("dns", "Dns", "dns-addr", ("127.0.0.1", 53)),
    ("dns", "Dns", "nameservers", []),
    ("dns", "Dns", "subDomainServers", {}),
    ("dns", "Dns", "cacheSize", 100000),
    ("dns", "Dns", "ip-monitor-path", "/skydns/monitor/status/"),
    ("dns", "Dns", "workers", 0),
    ("dns", "Dns", "ttl", 30),
    ("dns", "Dns", "min-ttl", 30),
    ("dns", "Dns", "forward-timeout", 2.0),
    ("dns", "Dns", "axfr-allow", [ipaddress.ip_network("127.0.0.0/8"),
                                  ipaddress.ip_network("::1/128")]),
    ("dns", "Dns", "max-udp-size", 1232),
    ("dns", "Dns", "udp-batch", True),
    ("dns", "Dns", "tcp-idle-timeout", 10.0),
    ("dns", "Log", "log-dir", ""),
    ("dns", "Log", "log-level", "info"),
    ("dns", "Log", "log-to-stdio", True),
    ("dns", "Log", "format", "kv"),
    ("dns", "Log", "log-queries", False),
    ("dns", "Etcd", "etcd-servers", ["http://127.0.0.1:2379"]),
    ("dns", "Etcd", "etcd-cafile", ""),
    ("dns", "Etcd", "etcd-timeout", 5.0),
    ("dns", "Etcd", "status-path", "/skydns/monitor/status/"),
    ("dns", "Etcd", "report-path", "/skydns/monitor/report/"),
    ("dns", "Etcd", "heart-path", "/skydns/monitor/heart/"),
    ("dns", "Etcd", "lock-path", "/skydns/monitor/lock/"),
    ("dns", "Fun", "random-one", False),
    ("dns", "Fun", "hone-one", False),
    ("dns", "Stats", "statsServer", ""),
    ("dns", "Stats", "statsServerAuthToken", ""),
    ("scanner", "General", "heartbeat-interval", 3.0),
    ("scanner", "General", "agent-downtime", 10.0),
    ("scanner", "General", "enable-check", True),
    ("scanner", "General", "metrics-addr", ""),
    ("scanner", "Check", "check-timeout", 2.0),
    ("scanner", "Check", "check-interval", 5.0),
    ("scanner", "Check", "scann-ports", [80]),
    ("scanner", "Check", "enable-icmp", True),
    ("scanner", "Check", "ping-timeout", 1.0),
    ("scanner", "Check", "ping-count", 1),
    ("scanner", "Check", "rise", 2),
    ("scanner", "Check", "fall", 3),
    ("scanner", "Check", "max-concurrency", 256),
    ("schedule", "General", "schedule-interval", 5.0),
    ("schedule", "General", "agent-downtime", 10.0),
    ("schedule", "General", "metrics-addr", ""),
    ("api", "General", "domain", "skydns.local."),
    ("api", "SkydnsApi", "api-enable", True),
    ("api", "SkydnsApi", "api-address", ("127.0.0.1", 9001)),
    ("api", "SkydnsApi", "skydns-auth", ""),
    ("api", "SkydnsApi", "max-body", 65536),
    ("api", "Tokens", None, {}),
]


@pytest.mark.parametrize("kind,section,key,expected", DEFAULTS)
def test_defaults(kind, section, key, expected):
    cfg = load_config(None, kind)
    assert (cfg[section] if key is None else cfg[section][key]) == expected


def test_default_forward_allow_is_loopback_and_private():
    nets = load_config(None, "dns")["Dns"]["forward-allow"]
    assert [str(n) for n in nets] == [
        "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
        "fc00::/7", "169.254.0.0/16", "fe80::/10",
    ]


@pytest.mark.parametrize("kind", ["scanner", "schedule"])
def test_default_hostname_is_the_machine_name(kind):
    assert load_config(None, kind)["General"]["hostname"] == socket.gethostname()


def test_returns_plain_dicts():
    cfg = load_config(None, "api")
    assert type(cfg) is dict
    assert all(type(section) is dict for section in cfg.values())


# --------------------------------------------------------------------------- conversions

GOOD = [
    ("[Dns]\ndns-domain = Example.ORG\n", "Dns", "dns-domain", "example.org."),
    ("[Dns]\ndns-addr = [::1]:5353\n", "Dns", "dns-addr", ("::1", 5353)),
    ("[Dns]\ndns-addr = 127.0.0.1\n", "Dns", "dns-addr", ("127.0.0.1", 53)),
    ("[Dns]\nnameservers = 127.0.0.1\n", "Dns", "nameservers", [("127.0.0.1", 53)]),
    ("[Dns]\nnameservers = 127.0.0.1:5300, [::1]:53, ::1\n", "Dns", "nameservers",
     [("127.0.0.1", 5300), ("::1", 53), ("::1", 53)]),
    ('[Dns]\nsubDomainServers = "a.b.@127.0.0.1:5300,127.0.0.2#C.D@[::1]:54"\n',
     "Dns", "subDomainServers",
     {"a.b.": [("127.0.0.1", 5300), ("127.0.0.2", 53)], "c.d.": [("::1", 54)]}),
    # Unquoted, as the original suite wrote it: commas split and '#' starts a comment.
    ("[Dns]\nsubDomainServers = a.b.@127.0.0.1:5300,127.0.0.2#c.d.@127.0.0.3\n",
     "Dns", "subDomainServers",
     {"a.b.": [("127.0.0.1", 5300), ("127.0.0.2", 53)], "c.d.": [("127.0.0.3", 53)]}),
    ("[Dns]\nsubDomainServers = a.b.@127.0.0.1 # a real comment\n",
     "Dns", "subDomainServers", {"a.b.": [("127.0.0.1", 53)]}),
    ("[Dns]\nip-monitor-path = /x/status\n", "Dns", "ip-monitor-path", "/x/status/"),
    ("[Dns]\nworkers = 0\n", "Dns", "workers", 0),
    ("[Dns]\nforward-allow = 10.1.0.0/16\n", "Dns", "forward-allow",
     [ipaddress.ip_network("10.1.0.0/16")]),
    ("[Dns]\nforward-allow = ,\n", "Dns", "forward-allow", []),
    ("[Dns]\nforward-timeout = 0.25\n", "Dns", "forward-timeout", 0.25),
    ("[Log]\nlog-level = DEBUG\n", "Log", "log-level", "debug"),
    ("[Log]\nlog-to-stdio = no\n", "Log", "log-to-stdio", False),
    ("[Log]\nformat = json\n", "Log", "format", "json"),
    ("[Etcd]\netcd-servers = http://[::1]:2379, https://localhost/\n", "Etcd", "etcd-servers",
     ["http://[::1]:2379", "https://localhost:2379"]),
    ("[Etcd]\nlock-path = /l\n", "Etcd", "lock-path", "/l/"),
    ("[Stats]\nstatsServer = 127.0.0.1:9600\n", "Stats", "statsServer", ("127.0.0.1", 9600)),
]


@pytest.mark.parametrize("text,section,key,expected", GOOD)
def test_conversions(tmp_path, text, section, key, expected):
    assert load_config(write(tmp_path, text), "dns")[section][key] == expected


def test_scanner_conversions(tmp_path):
    path = write(tmp_path, "[General]\nhostname = scan-1\nmetrics-addr = 127.0.0.1:9602\n"
                           "[Check]\nscann-ports = 443\n")
    cfg = load_config(path, "scanner")
    assert cfg["General"]["hostname"] == "scan-1"
    assert cfg["General"]["metrics-addr"] == "127.0.0.1:9602"
    assert cfg["Check"]["scann-ports"] == [443]
    path = write(tmp_path, "[Check]\nscann-ports = 80, 443, 80\n")
    assert load_config(path, "scanner")["Check"]["scann-ports"] == [80, 443]
    for zero in ("0", "0.00", ""):  # "work it out", however zero is written
        path = write(tmp_path, f"[Check]\nconfirm-timeout = {zero}\n")
        assert load_config(path, "scanner")["Check"]["confirm-timeout"] == 0.0


def test_api_tokens_allow_any_owner(tmp_path):
    path = write(tmp_path, '[Tokens]\nteam-web = s3cret\nops = "a,b#c"\n')
    assert load_config(path, "api")["Tokens"] == {"team-web": "s3cret", "ops": "a,b#c"}


def test_status_path_overridden_by_ip_monitor_path(tmp_path):
    path = write(tmp_path, "[Dns]\nip-monitor-path = /mine/status\n"
                           "[Etcd]\nstatus-path = /theirs/status/\n")
    cfg = load_config(path, "dns")
    assert cfg["Etcd"]["status-path"] == "/mine/status/"
    assert cfg["Dns"]["ip-monitor-path"] == "/mine/status/"


def test_status_path_kept_for_other_kinds(tmp_path):
    path = write(tmp_path, "[Etcd]\nstatus-path = /theirs/status\n")
    assert load_config(path, "scanner")["Etcd"]["status-path"] == "/theirs/status/"


def test_etcd_files_resolved_relative_to_config(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    cfg = load_config(write(tmp_path, "[Etcd]\netcd-cafile = ca.pem\n"), "dns")
    assert cfg["Etcd"]["etcd-cafile"] == str(tmp_path / "ca.pem")


# --------------------------------------------------------------------------- errors

# (kind, file text, fragments that must all be in the message)
BAD = [
    ("dns", "[Dns]\ndns-addr = 127.0.0.1:70000\n",
     ["[Dns] dns-addr:", "port 70000 out of range 1-65535"]),
    ("dns", "[Dns]\ndns-addr = [::1\n", ["[Dns] dns-addr:", "]"]),
    ("dns", "[Dns]\ndns-addr = 127.0.0.1:http\n", ["[Dns] dns-addr:", "not a number"]),
    ("dns", "[Fun]\nrandom-one = true\nhone-one = true\n",
     ["[Fun] hone-one: random-one and hone-one cannot both be true"]),
    ("dns", "[Dns]\nsubDomainServers = sub.skydns.local.127.0.0.1\n",
     ["[Dns] subDomainServers:", "missing '@'"]),
    ("dns", "[Dns]\nsubDomainServers = sub.skydns.local.@\n",
     ["[Dns] subDomainServers:", "empty server list"]),
    ("dns", '[Dns]\nsubDomainServers = "a.b.@127.0.0.1,"\n',
     ["[Dns] subDomainServers:", "empty entry"]),
    ("dns", '[Dns]\nsubDomainServers = "a.b.@127.0.0.1:0"\n',
     ["[Dns] subDomainServers:", "port 0 out of range"]),
    ("dns", '[Dns]\nsubDomainServers = "a b.@127.0.0.1"\n',
     ["[Dns] subDomainServers:", "bad label"]),
    ("dns", '[Dns]\nsubDomainServers = "a..b.@127.0.0.1"\n',
     ["[Dns] subDomainServers:", "empty label"]),
    ("dns", '[Dns]\nsubDomainServers = "a.@1.2.3.4@5.6.7.8"\n',
     ["[Dns] subDomainServers:", "more than one '@'"]),
    ("dns", '[Dns]\nsubDomainServers = "a.@dns.example"\n',
     ["[Dns] subDomainServers:", "IP address"]),
    ("dns", '[Dns]\nsubDomainServers = "a.@127.0.0.1#A.@127.0.0.2"\n',
     ["[Dns] subDomainServers:", "twice"]),
    ("dns", "[Dnss]\n", ["[Dnss] unknown section", "did you mean 'Dns'"]),
    ("dns", "[Dns]\ndns-adr = 127.0.0.1\n", ["[Dns] dns-adr: unknown key", "'dns-addr'"]),
    ("dns", "dns-addr = 127.0.0.1\n", ["dns-addr: setting outside any [Section]"]),
    ("dns", "[Dns]\n[[dns-addr]]\nx = 1\n", ["[Dns] dns-addr:", "subsection"]),
    ("dns", "[Dns\n", ["line 1:"]),
    ("dns", "[Dns]\nttl = 1\nttl = 2\n", ["line 3:", "duplicate"]),
    ("dns", '[Dns]\ndns-domain = "unterminated\n', ["line 2:"]),
    ("dns", "[Log]\nlog-to-stdio = maybe\n", ["[Log] log-to-stdio:", "true or false"]),
    ("dns", "[Log]\nlog-level = verbose\n", ["[Log] log-level:", "debug, info, warning, error"]),
    ("dns", "[Log]\nformat = xml\n", ["[Log] format:"]),
    ("dns", "[Dns]\nforward-allow = 10.0.0.0/33\n", ["[Dns] forward-allow:", "10.0.0.0/33"]),
    ("dns", "[Dns]\naxfr-allow = 127.0.0.0/8, 10.0.0.1/8\n",
     ["[Dns] axfr-allow:", "host bits"]),
    ("dns", "[Dns]\nnameservers = 127.0.0.1:99999\n", ["[Dns] nameservers:", "99999"]),
    ("dns", "[Dns]\nnameservers = resolver.example\n", ["[Dns] nameservers:", "IP address"]),
    ("dns", "[Dns]\nttl = -1\n", ["[Dns] ttl:", "-1"]),
    ("dns", "[Dns]\nttl = 2147483648\n", ["[Dns] ttl:"]),
    ("dns", "[Dns]\ncacheSize = lots\n", ["[Dns] cacheSize:", "integer"]),
    ("dns", "[Dns]\nmax-udp-size = 511\n", ["[Dns] max-udp-size:", "512-65535"]),
    ("dns", "[Dns]\nudp-batch = sometimes\n", ["[Dns] udp-batch:", "sometimes"]),
    ("dns", "[Dns]\nforward-timeout = 0\n", ["[Dns] forward-timeout:", "positive"]),
    ("dns", "[Dns]\ntcp-idle-timeout = soon\n", ["[Dns] tcp-idle-timeout:"]),
    ("dns", "[Dns]\ndns-domain = a" + ".a" * 130 + "\n", ["[Dns] dns-domain:", "253"]),
    ("dns", "[Dns]\ndns-domain = " + "a" * 64 + ".local\n", ["[Dns] dns-domain:", "63"]),
    ("dns", "[Dns]\nip-monitor-path = skydns/status\n", ["[Dns] ip-monitor-path:", "'/'"]),
    ("dns", "[Dns]\ndns-addr = 127.0.0.1:53, 127.0.0.2:53\n", ["[Dns] dns-addr:", "single"]),
    ("dns", "[Etcd]\netcd-servers = ftp://127.0.0.1:2379\n", ["[Etcd] etcd-servers:", "http"]),
    ("dns", "[Etcd]\netcd-servers = 127.0.0.1:2379\n", ["[Etcd] etcd-servers:"]),
    ("dns", "[Etcd]\netcd-servers = http://127.0.0.1:0\n", ["[Etcd] etcd-servers:", "port 0"]),
    ("dns", "[Etcd]\netcd-servers = ,\n", ["[Etcd] etcd-servers:", "at least one"]),
    ("dns", "[Etcd]\netcd-cafile = missing-ca.pem\n", ["[Etcd] etcd-cafile:", "missing-ca.pem"]),
    ("dns", "[Etcd]\netcd-certfile = nope.crt\n", ["[Etcd] etcd-certfile:", "nope.crt"]),
    ("dns", "[Stats]\nstatsServer = 127.0.0.1\n", ["[Stats] statsServer:", "port"]),
    ("scanner", "[Check]\nscann-ports = 80, 70000\n", ["[Check] scann-ports:", "70000"]),
    ("scanner", "[Check]\nrise = 0\n", ["[Check] rise:"]),
    ("scanner", "[Check]\nconfirm = -1\n", ["[Check] confirm:", "-1"]),
    ("scanner", "[Check]\nconfirm = 17\n", ["[Check] confirm:", "0-16"]),
    ("scanner", "[Check]\nconfirm-timeout = -2\n", ["[Check] confirm-timeout:", "positive"]),
    ("scanner", "[Check]\nisolation-threshold = 1.5\n",
     ["[Check] isolation-threshold:", "at most 1"]),
    ("scanner", "[Check]\nisolation-threshold = 0\n", ["[Check] isolation-threshold:"]),
    ("scanner", "[Check]\nisolation-threshold = half\n", ["[Check] isolation-threshold:"]),
    ("scanner", "[Etcd]\nconfirm-path = confirm\n", ["[Etcd] confirm-path:", "'/'"]),
    ("scanner", "[General]\nhostname = a/b\n", ["[General] hostname:"]),
    ("scanner", "[General]\nheartbeat-interval = 10\nagent-downtime = 5\n",
     ["[General] heartbeat-interval:", "agent-downtime"]),
    ("scanner", "[Dns]\n", ["[Dns] unknown section"]),
    ("schedule", "[General]\nmetrics-addr = 127.0.0.1:99999\n", ["[General] metrics-addr:"]),
    ("schedule", "[Check]\n", ["[Check] unknown section"]),
    ("api", "[SkyDnsApi]\napi-enable = true\n", ["[SkyDnsApi] unknown section", "'SkydnsApi'"]),
    ("api", "[SkydnsApi]\napi-address = 127.0.0.1:65536\n", ["[SkydnsApi] api-address:"]),
    ("api", "[General]\ndomain = bad_label!.local\n", ["[General] domain:", "bad label"]),
    ("api", "[Tokens]\nops =\n", ["[Tokens] ops:", "empty"]),
]


@pytest.mark.parametrize("kind,text,fragments", BAD, ids=[f"{k}:{t!r}"[:60] for k, t, _ in BAD])
def test_errors_name_file_section_key(tmp_path, kind, text, fragments):
    _, message = config_error(tmp_path, text, kind)
    for fragment in fragments:
        assert fragment in message


def test_port_error_exact_message(tmp_path):
    path, message = config_error(tmp_path, "[Dns]\ndns-addr = 127.0.0.1:70000\n")
    assert message == f"{path}: [Dns] dns-addr: port 70000 out of range 1-65535"


def test_fun_error_exact_message(tmp_path):
    path, message = config_error(tmp_path, "[Fun]\nrandom-one = on\nhone-one = 1\n")
    assert message == f"{path}: [Fun] hone-one: random-one and hone-one cannot both be true"


def test_error_attributes(tmp_path):
    path = write(tmp_path, "[Dns]\nttl = x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, "dns")
    assert (info.value.path, info.value.section, info.value.key) == (path, "Dns", "ttl")


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError, match="nope.conf: file not found"):
        load_config(path, "dns")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path)):
        load_config(str(tmp_path), "dns")


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.conf"
    path.write_bytes(b"[Dns]\nttl = \xff\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(str(path), "dns")


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        load_config(None, "dhcp")


def test_load_or_exit_prints_one_line_and_exits_2(tmp_path):
    path = write(tmp_path, "[Dns]\ndns-addr = 127.0.0.1:70000\n")
    code = f"from skydns.config import load_or_exit; load_or_exit({path!r}, 'dns')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines == [f"skydns: config error: {path}: [Dns] dns-addr: "
                     "port 70000 out of range 1-65535"]
    assert proc.stdout == ""


# --------------------------------------------------------------------------- parsers

@pytest.mark.parametrize("text,default,expected", [
    ("1.2.3.4:53", 53, ("1.2.3.4", 53)),
    ("1.2.3.4", 5353, ("1.2.3.4", 5353)),
    ("[::1]:53", 5353, ("::1", 53)),
    ("[::1]", 5353, ("::1", 5353)),
    ("::1", 53, ("::1", 53)),
    ("2001:db8::1", 53, ("2001:db8::1", 53)),
    ("[2001:db8::1]:8053", 53, ("2001:db8::1", 8053)),
    ("localhost", 9001, ("localhost", 9001)),
    ("  localhost:8080 ", 1, ("localhost", 8080)),
    ("host:65535", 1, ("host", 65535)),
    ("host:1", 2, ("host", 1)),
])
def test_parse_hostport(text, default, expected):
    assert parse_hostport(text, default) == expected


@pytest.mark.parametrize("text,fragment", [
    ("", "empty"),
    ("1.2.3.4:70000", "port 70000 out of range 1-65535"),
    ("1.2.3.4:0", "out of range"),
    ("1.2.3.4:", "missing port"),
    ("1.2.3.4:x", "not a number"),
    (":53", "missing host"),
    ("[::1", "]"),
    ("[::1]53", "after ']'"),
    ("[1.2.3.4]:53", "IPv6"),
    ("::1:53x", "[addr]:port"),
    ("bad host:53", "host name"),
])
def test_parse_hostport_errors(text, fragment):
    with pytest.raises(ValueError) as info:
        parse_hostport(text, 53)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text,expected", [
    ("", {}),
    ("sub.skydns.local.@127.0.0.1:5300,127.0.0.2:53#other.zone.@10.0.0.1",
     {"sub.skydns.local.": [("127.0.0.1", 5300), ("127.0.0.2", 53)],
      "other.zone.": [("10.0.0.1", 53)]}),
    ("Sub.Zone@[::1]:5300,::2", {"sub.zone.": [("::1", 5300), ("::2", 53)]}),
    (" a.@127.0.0.1 # b.@127.0.0.2 #", {"a.": [("127.0.0.1", 53)], "b.": [("127.0.0.2", 53)]}),
])
def test_parse_subdomain_servers(text, expected):
    assert parse_subdomain_servers(text) == expected


@pytest.mark.parametrize("text", [
    "zone.127.0.0.1",           # missing @
    "zone.@",                   # empty server list
    "zone.@127.0.0.1,",         # empty entry
    "zone.@127.0.0.1:65536",    # bad port
    "zone.@127.0.0.1:abc",      # bad port
    "zo ne.@127.0.0.1",         # bad label
    "@127.0.0.1",               # empty zone
    "a" * 64 + ".@127.0.0.1",   # label too long
    "zone.@ns.example",         # not an IP
    "zone.@1.2.3.4@5.6.7.8",    # two @
])
def test_parse_subdomain_servers_errors(text):
    with pytest.raises(ValueError):
        parse_subdomain_servers(text)


# --------------------------------------------------------------------------- logsetup

@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _log_section(tmp_path, **overrides):
    section = {"log-dir": str(tmp_path / "logs"), "log-level": "debug", "log-to-stdio": False,
               "format": "kv", "log-queries": False}
    section.update(overrides)
    return section


def test_kv_log_lines(tmp_path, restore_root_logger):
    setup_logging(_log_section(tmp_path), "skydns-test")
    setup_logging(_log_section(tmp_path), "skydns-test")  # idempotent: still one file handler
    logging.getLogger("skydns.store").info(
        "watch resumed", extra=kv(key="/skydns/x", rev=5, note='say "hi"'))
    lines = (tmp_path / "logs" / "skydns-test.log").read_text().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("ts=")
    assert line.split(" ")[0].endswith("Z")
    assert ' level=info logger=skydns.store msg="watch resumed" key=/skydns/x rev=5 ' in line
    assert line.endswith('note="say \\"hi\\""')


def test_json_log_lines_and_level(tmp_path, restore_root_logger):
    setup_logging(_log_section(tmp_path, format="json", **{"log-level": "warning"}), "t")
    log = logging.getLogger("skydns.x")
    log.info("dropped")
    log.warning("kept %d", 1, extra=kv(ip="10.0.0.1"))
    lines = (tmp_path / "logs" / "t.log").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "warning"
    assert record["msg"] == "kept 1"
    assert record["ip"] == "10.0.0.1"
    assert record["logger"] == "skydns.x"


def test_log_to_stdio_only(tmp_path, restore_root_logger, capsys):
    setup_logging(_log_section(tmp_path, **{"log-dir": "", "log-to-stdio": True}), "t")
    logging.getLogger("skydns.t").info("hello")
    assert "level=info logger=skydns.t msg=hello" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "logs")


def test_pdns_section(tmp_path):
    path = tmp_path / "skydns.conf"
    path.write_text("[Pdns]\nsocket = run/pdns.sock\nsocket-mode = 0600\n")
    cfg = load_config(str(path), "dns")
    assert cfg["Pdns"]["socket"] == str(tmp_path / "run" / "pdns.sock")
    assert cfg["Pdns"]["socket-mode"] == 0o600  # checked and parsed here, nowhere else
    path.write_text("[Pdns]\nsocket-mode = 999\n")
    with pytest.raises(ConfigError, match=r"\[Pdns\] socket-mode"):
        load_config(str(path), "dns")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[Tokens]\nadmin = tok-1\n", "[Tokens] admin: the owner name 'admin' is kept"),
        ("[Tokens]\na = same\nb = same\n", "[Tokens] b: same token as owner 'a'"),
        ("[SkydnsApi]\nskydns-auth = t1\n[Tokens]\na = t1\n",
         "[Tokens] a: same token as [SkydnsApi] skydns-auth"),
    ],
)
def test_api_token_rules_live_in_the_config_layer(tmp_path, text, message):
    """Checked by load_config itself, so start-up and SIGHUP reload apply the same rules."""
    path = tmp_path / "api.conf"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path), "api")
    assert message in str(err.value)


# --------------------------------------------------------------------------- janitor


def test_janitor_recursors_and_key_file(tmp_path):
    (tmp_path / "key").write_text("s3cret\n")
    path = write(tmp_path, "[Janitor]\nrecursors = http://127.0.0.1:8082/, https://[::1]:8443\n"
                 "api-key-file = key\n", "skydns-janitor.conf")
    cfg = load_config(path, "janitor")["Janitor"]
    assert cfg["recursors"] == ["http://127.0.0.1:8082", "https://[::1]:8443"]
    assert cfg["api-key"] == "s3cret"
    assert cfg["api-key-file"] == str(tmp_path / "key")
    assert cfg["settle"] == [0.1, 1.0]
    path = write(tmp_path, "[Janitor]\nsettle = 2, 0.05\n", "b.conf")
    assert load_config(path, "janitor")["Janitor"]["settle"] == [0.05, 2.0]
    path = write(tmp_path, "[Janitor]\nsettle =\n", "c.conf")
    assert load_config(path, "janitor")["Janitor"]["settle"] == []


@pytest.mark.parametrize("text, where", [
    ("[Janitor]\nrecursors = 127.0.0.1:8082\n", "[Janitor] recursors: "),
    ("[Janitor]\nrecursors = ftp://127.0.0.1\n", "[Janitor] recursors: "),
    ("[Janitor]\nrecursors = http://127.0.0.1:99999\n", "[Janitor] recursors: "),
    ("[Janitor]\nrecursors = ,\n", "[Janitor] recursors: "),
    ("[Janitor]\napi-key-file = missing\n", "[Janitor] api-key-file: cannot read"),
    ("[Janitor]\napi-key = a\napi-key-file = b\n", "[Janitor] api-key-file: set api-key"),
    ("[Janitor]\ncoalesce = 0\n", "[Janitor] coalesce: "),
    ("[Janitor]\nsettle = 0.1, x\n", "[Janitor] settle: "),
])
def test_janitor_bad_values(tmp_path, text, where):
    _, message = config_error(tmp_path, text, "janitor")
    assert where in message
