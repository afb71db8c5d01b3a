"""Configuration loading for every skydns daemon (configobj + validate).

Each daemon kind has a configspec below.  `load_config` reads an INI file, validates it, and
returns plain nested dicts with every section and key present and converted.  Any problem
becomes one `ConfigError` whose message names the file, section and key, because operators
read these in a terminal or a journal and need to know exactly which line to fix.
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import math
import os
import re
import socket
import sys
from urllib.parse import urlsplit

from configobj import ConfigObj, ConfigObjError, flatten_errors
from validate import ValidateError, Validator

from . import exporterenv, legacy, skydns2

__all__ = [
    "ConfigError",
    "KINDS",
    "PROGRAMS",
    "config_problems",
    "load_config",
    "load_or_exit",
    "parse_hostport",
    "parse_subdomain_servers",
]


class ConfigError(Exception):
    """One line: '<path>: [<Section>] <key>: <reason>' (or '<path>: <reason>')."""

    def __init__(
        self, path: str | None, reason: str, section: str | None = None, key: str | None = None
    ):
        self.path = path if path is not None else "<defaults>"
        self.section = section
        self.key = key
        # Keep the message on one line whatever the underlying error said.
        self.reason = " ".join(str(reason).split())
        where = ""
        if section:
            where += f"[{section}] "
        if key:
            where += f"{key}: "
        super().__init__(f"{self.path}: {where}{self.reason}")


# --------------------------------------------------------------------------- specs

_LOG_SPEC = """
[Log]
log-dir = text(default="")
log-level = choice("debug", "info", "warning", "error", default="info")
log-to-stdio = flag(default=True)
format = choice("kv", "json", default="kv")
log-queries = flag(default=False)
"""

# [Log] keys of the DNS server's file only (dnsserver/front/tap.py): in another program's file
# they would do nothing, so there they are unknown keys.
_DNSTAP_SPEC = """
dnstap = dnstap_target(default="")
dnstap-identity = text(default="")
dnstap-version = text(default="")
dnstap-messages = dnstap_messages(default=list("auth_query", "auth_response"))
"""

_ETCD_SPEC = """
[Etcd]
etcd-servers = url_list(default=list("http://127.0.0.1:2379"))
etcd-certfile = text(default="")
etcd-keyfile = text(default="")
etcd-cafile = text(default="")
etcd-server-name = text(default="")
etcd-timeout = seconds(default=5.0)
status-path = etcd_path(default="/skydns/monitor/status/")
report-path = etcd_path(default="/skydns/monitor/report/")
heart-path = etcd_path(default="/skydns/monitor/heart/")
lock-path = etcd_path(default="/skydns/monitor/lock/")
refs-path = etcd_path(default="/skydns/monitor/refs/")
confirm-path = etcd_path(default="/skydns/monitor/confirm/")
history-path = etcd_path(default="/skydns/monitor/history/")
"""

_DNS_SPEC = (
    """
[Dns]
dns-domain = domain(default="skydns.local.")
dns-addr = hostport(53, default="127.0.0.1:53")
nameservers = nameserver_list(default=list())
subDomainServers = subdomain_servers(default="")
cacheSize = integer_range(0, default=100000)
ip-monitor-path = etcd_path(default="/skydns/monitor/status/")
workers = integer_range(0, default=0)
ttl = integer_range(0, 2147483647, default=30)
min-ttl = integer_range(0, 2147483647, default=30)
forward-timeout = seconds(default=2.0)
forward-allow = cidr_list(default=list("127.0.0.0/8", "::1/128", "10.0.0.0/8", \
"172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "169.254.0.0/16", "fe80::/10"))
axfr-allow = cidr_list(default=list("127.0.0.0/8", "::1/128"))
also-notify = nameserver_list(default=list())
tsig-key = tsig_key(default="")
tsig-keys = tsig_key_list(default=list())
max-udp-size = integer_range(512, 65535, default=1232)
udp-batch = flag(default=True)
tcp-idle-timeout = seconds(default=10.0)
tcp-max-connections = integer_range(0, default=1000)
tcp-max-per-client = integer_range(0, default=100)
dnssec = force_list(default=list())
local = optional_domain(default="")
[Fun]
random-one = flag(default=False)
hone-one = flag(default=False)
[Stats]
statsServer = optional_hostport(default="")
statsServerAuthToken = text(default="")
[Pdns]
socket = text(default="/run/skydns/pdns.sock")
socket-mode = text(default="0660")
metrics-addr = optional_hostport(as_text=True, default="")
"""
    + _LOG_SPEC
    + _DNSTAP_SPEC
    + _ETCD_SPEC
)

_SCANNER_SPEC = (
    """
[General]
hostname = hostname(default="")
heartbeat-interval = seconds(default=3.0)
agent-downtime = seconds(default=10.0)
enable-check = flag(default=True)
metrics-addr = optional_hostport(as_text=True, default="")
[Check]
check-timeout = seconds(default=2.0)
check-interval = seconds(default=5.0)
scann-ports = port_list(default=list("80"))
enable-icmp = flag(default=True)
ping-timeout = seconds(default=1.0)
ping-count = integer_range(1, default=1)
rise = integer_range(1, default=2)
fall = integer_range(1, default=3)
max-concurrency = integer_range(1, default=256)
confirm = integer_range(0, 16, default=1)
confirm-timeout = optional_seconds(default=0)
isolation-threshold = fraction(default=0.5)
"""
    + _ETCD_SPEC
    + _LOG_SPEC
)

_SCHEDULE_SPEC = (
    """
[General]
hostname = hostname(default="")
schedule-interval = seconds(default=5.0)
agent-downtime = seconds(default=10.0)
metrics-addr = optional_hostport(as_text=True, default="")
"""
    + _ETCD_SPEC
    + _LOG_SPEC
)

_API_SPEC = (
    """
[General]
domain = domain(default="skydns.local.")
[SkydnsApi]
api-enable = flag(default=True)
api-address = hostport(9001, default="127.0.0.1:9001")
skydns-auth = text(default="")
max-body = integer_range(1, default=65536)
read-timeout = seconds(default=10.0)
keepalive-timeout = seconds(default=75.0)
max-connections = integer_range(0, default=1000)
max-per-client = integer_range(0, default=100)
status-public = flag(default=False)
[Tokens]
__many__ = token
[Kube2Skydns]
kube-enable = flag(default=False)
kube-master = kube_url(default="")
kube-token-file = text(default="")
kube-cafile = text(default="")
kube-config = text(default="")
kube-namespaces = kube_namespaces(default=list())
kube-ip-source = kube_ip_source(default=list("external", "cluster"))
kube-watch-timeout = seconds(default=300.0)
kube-backoff-max = seconds(default=30.0)
"""
    + _ETCD_SPEC
    + _LOG_SPEC
)

_JANITOR_SPEC = (
    """
[Janitor]
recursors = recursor_list(default=list("http://127.0.0.1:8082"))
api-key = text(default="")
api-key-file = text(default="")
domain = domain(default="skydns.local.")
timeout = seconds(default=2.0)
coalesce = seconds(default=0.1)
settle = seconds_list(default=list("0.1", "1.0"))
max-pending = integer_range(1, default=10000)
metrics-addr = optional_hostport(as_text=True, default="")
"""
    + _ETCD_SPEC
    + _LOG_SPEC
)

_CLOUDSTACK_SPEC = (
    """
[General]
domain = domain(default="skydns.local.")
metrics-addr = optional_hostport(as_text=True, default="")
[CloudStack]
endpoint = http_url(default="")
api-key = text(default="")
secret-key = text(default="")
secret-key-file = text(default="")
verify-tls = flag(default=True)
timeout = seconds(default=10.0)
resync-interval = optional_seconds(default=600.0)
page-size = integer_range(1, default=500)
backoff-max = seconds(default=30.0)
[Kafka]
bootstrap = kafka_bootstrap(default=list("127.0.0.1:9092"))
topic = kafka_name(default="cloudstack")
group = kafka_name(default="skydns-cloudstack")
security-protocol = choice("plaintext", "ssl", "sasl_plaintext", "sasl_ssl", \
default="plaintext")
ssl-cafile = text(default="")
ssl-certfile = text(default="")
ssl-keyfile = text(default="")
sasl-mechanism = choice("plain", "scram-sha-256", "scram-sha-512", default="plain")
sasl-username = text(default="")
sasl-password = text(default="")
sasl-password-file = text(default="")
session-timeout = seconds(default=6.0)
heartbeat-interval = seconds(default=1.0)
[Records]
common-zone = optional_domain(default="")
ttl = integer_range(0, 2147483647, default=60)
ptr = flag(default=True)
groups = flag(default=True)
"""
    + _ETCD_SPEC
    + _LOG_SPEC
)

SPECS = {"dns": _DNS_SPEC, "scanner": _SCANNER_SPEC, "schedule": _SCHEDULE_SPEC, "api": _API_SPEC,
         "janitor": _JANITOR_SPEC, "cloudstack": _CLOUDSTACK_SPEC}
KINDS = tuple(SPECS)
# The program that reads each kind of file, named in its config errors and warnings.
PROGRAMS = {"dns": "skydns", "scanner": "skydns-scanner", "schedule": "skydns-schedule",
            "api": "skydns-kubeapi", "janitor": "skydns-janitor",
            "cloudstack": "skydns-cloudstack"}


# --------------------------------------------------------------------------- parsers

_PORT_RE = re.compile(r"[0-9]+")
_LABEL_RE = re.compile(r"[a-z0-9_-]+")
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9_-]{1,63}")


def _port(text: str) -> int:
    text = text.strip()
    if not text:
        raise ValueError("missing port after ':'")
    if not _PORT_RE.fullmatch(text):
        raise ValueError(f"port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1-65535")
    return port


def _validate_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is neither an IP address nor a valid host name")


def _split_hostport(text: str, default_port: int | None) -> tuple[str, int]:
    """parse_hostport, but default_port None means the port is mandatory."""
    s = text.strip()
    if not s:
        raise ValueError("empty address")
    port_text: str | None = None
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in {s!r}")
        host, rest = s[1:end], s[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected {rest!r} after ']' in {s!r}")
            port_text = rest[1:]
    elif s.count(":") > 1:
        # Several colons without brackets can only be a bare IPv6 address (no port).
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            raise ValueError(
                f"{s!r} is not an IPv6 address (write IPv6 with a port as [addr]:port)"
            ) from None
        host = s
    else:
        host, sep, rest = s.partition(":")
        if not host:
            raise ValueError(f"missing host in {s!r} (use 0.0.0.0 for every address)")
        _validate_host(host)
        if sep:
            port_text = rest
    if port_text is not None:
        return host, _port(port_text)
    if default_port is None:
        raise ValueError(f"missing port in {s!r} (expected host:port)")
    return host, default_port


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """'1.2.3.4:53', '[::1]:53', '::1', 'host' -> (host, port); ValueError if malformed."""
    return _split_hostport(text, default_port)


def _ip_hostport(text: str, default_port: int) -> tuple[str, int]:
    # Upstream resolvers must be literal IPs: resolving them would need DNS itself.
    host, port = _split_hostport(text, default_port)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text.strip()!r}: server must be an IP address") from None
    return str(ip), port


def _domain(text: str) -> str:
    """Lower-case, fully qualified (trailing dot), labels 1-63 chars, name <= 253 chars."""
    name = text.strip().lower()
    if not name.endswith("."):
        name += "."
    if name == ".":
        raise ValueError("empty domain name")
    if len(name) - 1 > 253:
        raise ValueError(f"domain name longer than 253 characters: {name[:40]}...")
    for label in name[:-1].split("."):
        if not label:
            raise ValueError(f"empty label in {name!r}")
        if len(label) > 63:
            raise ValueError(f"label {label[:20]!r}... longer than 63 characters")
        if not _LABEL_RE.fullmatch(label):
            raise ValueError(f"bad label {label!r} in {name!r} (letters, digits, '-', '_')")
    return name


def parse_subdomain_servers(text: str) -> dict[str, list[tuple[str, int]]]:
    """'zone.@ip:port,ip#other.@ip' -> {'zone.': [(ip, port), (ip, 53)], 'other.': [...]}."""
    result: dict[str, list[tuple[str, int]]] = {}
    for chunk in text.split("#"):
        chunk = chunk.strip()
        if not chunk:
            continue
        zone_text, sep, servers = chunk.partition("@")
        if not sep:
            raise ValueError(f"{chunk!r}: missing '@' between zone and servers")
        if "@" in servers:
            raise ValueError(f"{chunk!r}: more than one '@' (separate zones with '#')")
        zone = _domain(zone_text)
        if zone in result:
            raise ValueError(f"zone {zone} listed twice")
        items = [item.strip() for item in servers.split(",")]
        if items == [""]:
            raise ValueError(f"zone {zone}: empty server list")
        if "" in items:
            raise ValueError(f"zone {zone}: empty entry in server list {servers.strip()!r}")
        try:
            result[zone] = [_ip_hostport(item, 53) for item in items]
        except ValueError as err:
            raise ValueError(f"zone {zone}: {err}") from None
    return result


def _etcd_url(text: str) -> str:
    """Validate an etcd endpoint and normalise it to scheme://host:port."""
    url = text.strip()
    if "://" not in url:
        raise ValueError(f"{url!r}: expected http://host:port or https://host:port")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: scheme must be http or https")
    if "@" in parts.netloc:
        raise ValueError(f"{url!r}: user info is not supported in etcd URLs")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: no path, query or fragment expected")
    try:
        host, port = _split_hostport(parts.netloc, 2379)
    except ValueError as err:
        raise ValueError(f"{url!r}: {err}") from None
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


def _recursor_url(text: str) -> str:
    """A PowerDNS Recursor API base URL, http(s)://host:port[/prefix], without trailing '/'."""
    url = text.strip()
    if "://" not in url:
        raise ValueError(f"{url!r}: expected http://host:port or https://host:port")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: scheme must be http or https")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: no user info, query or fragment expected")
    try:
        _split_hostport(parts.netloc, 80 if parts.scheme == "http" else 443)
    except ValueError as err:
        raise ValueError(f"{url!r}: {err}") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


# --------------------------------------------------------------------------- checks
# validate check functions: each gets the raw value (str, or list when the line had commas)
# plus the spec's arguments as strings, returns the converted value, raises _Invalid.


class _Invalid(ValidateError):
    """A validation failure whose str() is the reason shown to the operator."""


def _single(value) -> str:
    if isinstance(value, list):
        raise _Invalid("expected a single value; quote it if it contains a comma")
    return value


def _items(value) -> list[str]:
    # configobj only makes a list when the line has a comma; accept one bare value too.
    if isinstance(value, list):
        return [item.strip() for item in value]
    value = value.strip()
    return [value] if value else []


def _wrap(fn, value, prefix: str = ""):
    try:
        return fn(value)
    except ValueError as err:
        raise _Invalid(f"{prefix}{err}") from None


def _check_text(value):
    return _single(value)


def _check_flag(value):
    if isinstance(value, bool):
        return value
    word = _single(value).strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise _Invalid(f"expected true or false, got {value!r}")


def _check_choice(value, *options):
    word = _single(value).strip().lower()
    if word not in options:
        raise _Invalid(f"expected one of {', '.join(options)}; got {value!r}")
    return word


def _check_integer_range(value, lo=None, hi=None):
    if isinstance(value, int):
        text = str(value)
    else:
        text = _single(value).strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise _Invalid(f"expected an integer, got {text!r}")
    number = int(text)
    lo = None if lo is None else int(lo)
    hi = None if hi is None else int(hi)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        if hi is None:
            raise _Invalid(f"{number} is less than the minimum {lo}")
        raise _Invalid(f"{number} out of range {lo}-{hi}")
    return number


def _check_seconds(value):
    text = str(value) if isinstance(value, float) else _single(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        raise _Invalid(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise _Invalid(f"must be a positive number of seconds, got {text!r}")
    return seconds


def _check_optional_seconds(value):
    """seconds, or 0 / empty for "work it out" (the caller's default)."""
    text = str(value) if isinstance(value, (int, float)) else _single(value).strip()
    try:
        if text == "" or float(text) == 0:  # any spelling of zero: "0", "0.00", "-0"
            return 0.0
    except ValueError:
        pass  # _check_seconds says what is wrong with it
    return _check_seconds(text)


def _check_fraction(value):
    text = str(value) if isinstance(value, float) else _single(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise _Invalid(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 < number <= 1:
        raise _Invalid(f"must be above 0 and at most 1, got {text!r}")
    return number


def _check_seconds_list(value):
    return sorted(_check_seconds(item) for item in _items(value))


def _check_hostport(value, default_port):
    return _wrap(lambda v: parse_hostport(_single(v), int(default_port)), value)


def _check_optional_hostport(value, as_text="false"):
    text = _single(value).strip()
    if not text:
        return ""
    host, port = _wrap(lambda v: _split_hostport(v, None), text)
    return text if _check_flag(as_text) else (host, port)


def _check_nameserver_list(value):
    servers = []
    for item in _items(value):
        # Name the offending entry: a bare "port out of range" is ambiguous in a list.
        prefix = f"{item!r}: " if ":" in item else ""
        servers.append(_wrap(lambda v: _ip_hostport(v, 53), item, prefix))
    return servers


def _check_subdomain_servers(value):
    # Unquoted commas turned the value into a list; rejoin so the whole string is parsed.
    # The check only validates: a dict stored back into configobj would become a section.
    text = ",".join(value) if isinstance(value, list) else value
    _wrap(parse_subdomain_servers, text)
    return text


def _check_tsig_key(value):
    from skydns.tsigkey import parse_key

    text = _single(value).strip()
    if text:
        _wrap(parse_key, text)
    return text


def _check_tsig_key_list(value):
    from skydns.tsigkey import parse_keys

    items = _items(value)
    _wrap(parse_keys, items)
    return items


def _check_cidr_list(value):
    return [_wrap(ipaddress.ip_network, item) for item in _items(value)]


def _check_url_list(value):
    urls = [_wrap(_etcd_url, item) for item in _items(value)]
    if not urls:
        raise _Invalid("at least one etcd server is required")
    return urls


def _check_recursor_list(value):
    urls: list[str] = []
    for item in _items(value):
        url = _wrap(_recursor_url, item)
        if url not in urls:
            urls.append(url)
    if not urls:
        raise _Invalid("at least one recursor API URL is required")
    return urls


def _check_port_list(value):
    ports: list[int] = []
    for item in _items(value):
        port = _wrap(_port, item)
        if port not in ports:
            ports.append(port)
    return ports


def _check_etcd_path(value):
    path = _single(value).strip()
    if not path.startswith("/"):
        raise _Invalid(f"must start with '/', got {path!r}")
    if any(ch.isspace() for ch in path):
        raise _Invalid(f"must not contain whitespace, got {path!r}")
    return path if path.endswith("/") else path + "/"


DNSTAP_MESSAGES = ("auth_query", "auth_response", "client_query", "client_response",
                   "forwarder_query", "forwarder_response")


def _check_dnstap_target(value):
    """'unix:/path' or 'tcp:host:port' (where the collector listens) -> ('unix', path) or
    ('tcp', (host, port)); empty: dnstap off."""
    text = _single(value).strip()
    if not text:
        return ()
    scheme, sep, rest = text.partition(":")
    if sep and scheme == "unix":
        if not rest.strip():
            raise _Invalid("expected a socket path after 'unix:'")
        return ("unix", rest.strip())
    if sep and scheme == "tcp":
        return ("tcp", _wrap(lambda v: _split_hostport(v, None), rest))
    raise _Invalid(f"expected unix:/path/to/socket or tcp:host:port, got {text!r}")


def _check_dnstap_messages(value):
    kinds = [k.lower() for k in _items(value) if k]
    for kind in kinds:
        if kind not in DNSTAP_MESSAGES:
            raise _Invalid(f"unknown message type {kind!r}; expected some of "
                           f"{', '.join(DNSTAP_MESSAGES)}")
    if not kinds:
        raise _Invalid("no message type (leave dnstap empty to turn it off)")
    return list(dict.fromkeys(kinds))


def _check_domain(value):
    return _wrap(_domain, _single(value))


def _check_optional_domain(value):
    text = _single(value).strip()
    return _wrap(_domain, text) if text else ""


def _check_hostname(value):
    # The hostname becomes an etcd key component (heart/<hostname>), so no '/' or spaces.
    name = _single(value).strip()
    if any(ch.isspace() or ch == "/" for ch in name):
        raise _Invalid(f"must not contain '/' or whitespace, got {name!r}")
    return name


_KUBE_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
KUBE_IP_SOURCES = ("external", "cluster")


def _check_kube_url(value):
    url = _single(value).strip()
    if url and not re.fullmatch(r"https?://[^/\s]+/?", url):
        raise _Invalid(f"expected http(s)://host[:port], got {url!r}")
    return url.rstrip("/")


def _check_kube_namespaces(value):
    names = [n for n in _items(value) if n]
    for name in names:
        if not _KUBE_NAME_RE.fullmatch(name):
            raise _Invalid(f"{name!r} is not a Kubernetes namespace name")
    return sorted(set(names))


def _check_kube_ip_source(value):
    kinds = [k.lower() for k in _items(value) if k]
    if not kinds:
        raise _Invalid(f"expected a list of {', '.join(KUBE_IP_SOURCES)}")
    for kind in kinds:
        if kind not in KUBE_IP_SOURCES:
            raise _Invalid(f"expected {' or '.join(KUBE_IP_SOURCES)}, got {kind!r}")
    if len(set(kinds)) != len(kinds):
        raise _Invalid("a kind is listed twice")
    return kinds


def _check_http_url(value):
    url = _single(value).strip()
    if url and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", url):
        raise _Invalid(f"expected http(s)://host[:port]/path, got {url!r}")
    return url


_KAFKA_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _check_kafka_name(value):
    name = _single(value).strip()
    if not _KAFKA_NAME_RE.fullmatch(name):
        raise _Invalid(f"{name!r} is not a Kafka topic or group name (letters, digits, '._-')")
    return name


def _check_kafka_bootstrap(value):
    brokers = []
    for item in _items(value):
        if item:
            host, port = _broker(item)
            brokers.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not brokers:
        raise _Invalid("expected host:port, ... of at least one Kafka broker")
    return brokers


def _broker(item: str) -> tuple[str, int]:
    try:
        return _split_hostport(item, 9092)
    except ValueError as err:
        raise _Invalid(str(err)) from None


def _check_token(value):
    token = _single(value).strip()
    if not token:
        raise _Invalid("empty token")
    return token


_CHECKS = {
    "text": _check_text,
    "flag": _check_flag,
    "choice": _check_choice,
    "integer_range": _check_integer_range,
    "seconds": _check_seconds,
    "seconds_list": _check_seconds_list,
    "optional_seconds": _check_optional_seconds,
    "fraction": _check_fraction,
    "hostport": _check_hostport,
    "optional_hostport": _check_optional_hostport,
    "nameserver_list": _check_nameserver_list,
    "tsig_key": _check_tsig_key,
    "tsig_key_list": _check_tsig_key_list,
    "subdomain_servers": _check_subdomain_servers,
    "cidr_list": _check_cidr_list,
    "url_list": _check_url_list,
    "port_list": _check_port_list,
    "recursor_list": _check_recursor_list,
    "etcd_path": _check_etcd_path,
    "domain": _check_domain,
    "optional_domain": _check_optional_domain,
    "hostname": _check_hostname,
    "token": _check_token,
    "dnstap_target": _check_dnstap_target,
    "dnstap_messages": _check_dnstap_messages,
    "kube_url": _check_kube_url,
    "kube_namespaces": _check_kube_namespaces,
    "kube_ip_source": _check_kube_ip_source,
    "http_url": _check_http_url,
    "kafka_name": _check_kafka_name,
    "kafka_bootstrap": _check_kafka_bootstrap,
}


# --------------------------------------------------------------------------- loading

_CONTINUED_ZONES = re.compile(r"#(\S*@.*?)(?:\s+#.*)?$")


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        raise ConfigError(path, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, "is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(path, "permission denied") from None
    except UnicodeDecodeError as err:
        raise ConfigError(path, f"not valid UTF-8 (byte offset {err.start})") from None
    except OSError as err:
        raise ConfigError(path, err.strerror or str(err)) from None


def _parse(path: str | None, lines: list[str], spec: str) -> ConfigObj:
    try:
        return ConfigObj(
            lines,
            configspec=spec.splitlines(),
            interpolation=False,
            raise_errors=True,
            list_values=True,
        )
    except ConfigObjError as err:
        reason = re.sub(r"\s*at line \"?\d+\"?\.?$", "", str(err)).rstrip(".")
        if reason.startswith("Invalid line"):
            reason = "not a [Section] header or a key = value line"
        line = getattr(err, "line", "") or ""
        number = getattr(err, "line_number", None)
        where = f"line {number}: " if number else ""
        detail = f": {line.strip()!r}" if line.strip() else ""
        raise ConfigError(path, f"{where}{reason[:1].lower()}{reason[1:]}{detail}") from None


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _raise(err: ConfigError) -> None:
    raise err


def _check_structure(path: str | None, cfg: ConfigObj, report=_raise) -> None:
    """Reject anything the spec does not describe, before validate sees it. What validate
    cannot take (a stray key, an unknown section, a subsection) is removed once reported."""
    spec = cfg.configspec
    for key in list(cfg.scalars):
        report(ConfigError(path, "setting outside any [Section]", key=key))
        del cfg[key]
    for name in list(cfg.sections):
        if name not in spec.sections:
            report(ConfigError(path, f"unknown section{_suggest(name, spec.sections)}", name))
            del cfg[name]
            continue
        section = cfg[name]
        for sub in list(section.sections):
            # validate crashes on a subsection where the spec has a plain key.
            report(ConfigError(path, f"[[{sub}]] subsections are not allowed here", name, sub))
            del section[sub]
        known = spec[name].scalars
        if "__many__" in known:  # e.g. [Tokens]: any owner name is a key
            continue
        for key in section.scalars:
            if key not in known:
                report(ConfigError(path, f"unknown key{_suggest(key, known)}", name, key))


def _glue_subdomain_comment(cfg: ConfigObj) -> None:
    """Recover 'a.@ip#b.@ip' written without quotes, where configobj saw '#b.@ip' as a comment.

    The original suite wrote this value unquoted; silently dropping every zone after the first
    would be the worst outcome, so a comment that looks like more zones is taken as the value.
    """
    section = cfg.get("Dns")
    if section is None or "subDomainServers" not in section:
        return
    comment = section.inline_comments.get("subDomainServers") or ""
    match = _CONTINUED_ZONES.match(comment)
    if not match:
        return
    value = section["subDomainServers"]
    text = ",".join(value) if isinstance(value, list) else value
    section["subDomainServers"] = f"{text}#{match.group(1)}"
    section.inline_comments["subDomainServers"] = None


def _resolve_file(base_dir: str, name: str) -> str:
    # Relative paths are taken relative to the config file, not the daemon's working dir
    # (which is "/" under systemd), so a config directory can be moved as a unit.
    name = os.path.expanduser(name)
    return os.path.normpath(os.path.join(base_dir, name))


def _post_process(path: str | None, kind: str, result: dict, report=_raise) -> None:
    base_dir = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()

    etcd = result["Etcd"]
    for key in ("etcd-certfile", "etcd-keyfile", "etcd-cafile"):
        if etcd[key]:
            etcd[key] = _resolve_file(base_dir, etcd[key])
            if not os.path.isfile(etcd[key]):
                report(ConfigError(path, f"file {etcd[key]!r} does not exist", "Etcd", key))
    if etcd["etcd-keyfile"] and not etcd["etcd-certfile"]:
        report(ConfigError(
            path, "etcd-keyfile is set but etcd-certfile is not", "Etcd", "etcd-keyfile"
        ))

    log = result["Log"]
    if log["log-dir"]:
        log["log-dir"] = _resolve_file(base_dir, log["log-dir"])

    general = result.get("General", {})
    if "hostname" in general and not general["hostname"]:
        general["hostname"] = socket.gethostname()

    if kind == "dns":
        dns = result["Dns"]
        dns["subDomainServers"] = parse_subdomain_servers(dns["subDomainServers"])
        if result["Fun"]["random-one"] and result["Fun"]["hone-one"]:
            report(ConfigError(
                path, "random-one and hone-one cannot both be true", "Fun", "hone-one"
            ))
        if log["dnstap"] and log["dnstap"][0] == "unix":
            log["dnstap"] = ("unix", _resolve_file(base_dir, log["dnstap"][1]))
        dns["dnssec"] = _dnssec_keys(path, base_dir, dns, report)  # the loaded keys (keys.Key)
        _tsig_keys(path, dns, report)
        # ip-monitor-path is the original suite's name for the status prefix; it wins.
        etcd["status-path"] = dns["ip-monitor-path"]
        pdns = result["Pdns"]
        pdns["socket"] = _resolve_file(base_dir, pdns["socket"])
        try:
            mode = int(pdns["socket-mode"], 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            report(ConfigError(path, "must be an octal file mode like 0660", "Pdns",
                               "socket-mode"))
        pdns["socket-mode"] = mode  # the permission bits, ready for chmod
    elif kind == "api":
        problems = token_problems(result["SkydnsApi"]["skydns-auth"], result.get("Tokens", {}))
        for key, reason in problems:
            report(ConfigError(path, reason, "Tokens", key))
        kube = result["Kube2Skydns"]
        for key in ("kube-token-file", "kube-cafile", "kube-config"):
            if kube[key]:
                kube[key] = _resolve_file(base_dir, kube[key])
                if kube["kube-enable"] and not os.path.isfile(kube[key]):
                    report(ConfigError(path, f"file {kube[key]!r} does not exist",
                                       "Kube2Skydns", key))
        if kube["kube-config"] and kube["kube-master"]:
            report(ConfigError(path, "give kube-master or kube-config, not both",
                               "Kube2Skydns", "kube-config"))
    elif kind == "janitor":
        _read_secret(path, base_dir, result["Janitor"], "Janitor", "api-key", "api-key-file",
                     report)
    elif kind == "cloudstack":
        _cloudstack_files(path, base_dir, result, report)
    elif kind == "scanner":
        if general["heartbeat-interval"] >= general["agent-downtime"]:
            report(ConfigError(
                path,
                f"must be shorter than agent-downtime ({general['agent-downtime']:g}s), "
                "or the heartbeat lease expires between keep-alives",
                "General",
                "heartbeat-interval",
            ))


def _read_secret(path: str | None, base_dir: str, section: dict, name: str, key: str,
                 file_key: str, report=_raise) -> None:
    """`<key>-file` (read here, so a missing file is a config error) or `<key>`, not both."""
    if not section[file_key]:
        return
    if section[key]:
        report(ConfigError(path, f"set {key} or {file_key}, not both", name, file_key))
        return
    section[file_key] = _resolve_file(base_dir, section[file_key])
    try:
        with open(section[file_key], encoding="utf-8") as fh:
            section[key] = fh.read().strip()
    except OSError as err:
        report(ConfigError(path, f"cannot read {section[file_key]!r}: {err.strerror or err}",
                           name, file_key))
        return
    if not section[key]:
        report(ConfigError(path, f"{section[file_key]!r} is empty", name, file_key))


def _cloudstack_files(path: str | None, base_dir: str, result: dict, report=_raise) -> None:
    cs, kafka = result["CloudStack"], result["Kafka"]
    _read_secret(path, base_dir, cs, "CloudStack", "secret-key", "secret-key-file", report)
    _read_secret(path, base_dir, kafka, "Kafka", "sasl-password", "sasl-password-file", report)
    for key in ("ssl-cafile", "ssl-certfile", "ssl-keyfile"):
        if kafka[key]:
            kafka[key] = _resolve_file(base_dir, kafka[key])
            if not os.path.isfile(kafka[key]):
                report(ConfigError(path, f"file {kafka[key]!r} does not exist", "Kafka", key))
    if cs["page-size"] > 500:
        # CloudStack caps pages at its default.page.size (500): asking more pages short.
        report(ConfigError(path, "at most 500 (CloudStack's default.page.size)", "CloudStack",
                           "page-size"))


def _tsig_keys(path: str | None, dns: dict, report=_raise) -> None:
    """Each of tsig-key and tsig-keys is checked alone; here, that together they name every
    key once (the values stay text: each worker builds its own keyring)."""
    from skydns.tsigkey import TsigError, keyring

    try:
        keyring(dns["tsig-key"], dns["tsig-keys"])
    except TsigError as err:
        report(ConfigError(path, str(err), "Dns", "tsig-keys"))


def _dnssec_keys(path: str | None, base_dir: str, dns: dict, report=_raise) -> list:
    """[Dns] dnssec: BIND key basenames (relative to the config file) -> loaded keys; a key
    file that is unreadable, for another zone or not matching its pair is named in the error."""
    basenames = [b.strip() for b in dns["dnssec"] if b.strip()]
    if not basenames:
        return []
    from skydns.dnssec.keys import KeyFileError, load_keys  # cryptography only when used

    files = [_resolve_file(base_dir, b) for b in basenames]
    try:
        return load_keys(files, dns["dns-domain"])
    except KeyFileError as err:
        report(ConfigError(path, str(err), "Dns", "dnssec"))
        return []


ADMIN_OWNER = "admin"  # the owner the API records for the [SkydnsApi] skydns-auth token


def token_problems(admin_token: str, tokens: dict[str, str]) -> list[tuple[str, str]]:
    """(key, reason) for each [Tokens] entry that would make an API caller ambiguous."""
    problems = []
    seen: dict[str, str] = {}
    for owner, token in tokens.items():
        if owner == ADMIN_OWNER:
            problems.append(
                (owner, f"the owner name {ADMIN_OWNER!r} is kept for the skydns-auth token")
            )
        elif admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
            problems.append((owner, "same token as [SkydnsApi] skydns-auth"))
        elif token in seen:
            problems.append((owner, f"same token as owner {seen[token]!r}"))
        seen.setdefault(token, owner)
    return problems


def load_config(path: str | None, kind: str, environ=None) -> dict:
    """Load and validate the config of one daemon kind (see KINDS: "dns", "scanner", ...).

    path None gives all defaults.  Returns {section: {key: value}} with every key present.
    The original suite's spellings are read onto the canonical keys (skydns/legacy.py), and
    SkyDNS2's environment variables fill what the file leaves unset (`environ`, default
    os.environ).  Raises ConfigError (one line naming file, section and key) on any problem.
    """
    return load_config_warnings(path, kind, environ)[0]


def load_config_warnings(path: str | None, kind: str,
                         environ=None) -> tuple[dict, list[ConfigError]]:
    """load_config, and one warning per key of the file that no longer does anything."""
    return _load(path, kind, environ, _raise)


def config_problems(path: str | None, kind: str,
                    environ=None) -> tuple[list[ConfigError], list[ConfigError]]:
    """(errors, warnings) of one file: every error, not only the first (`skydns check`).

    A file that cannot be read or parsed is one error. Checks that need valid values (files
    named by them, keys that depend on each other) run only when every value is valid."""
    errors: list[ConfigError] = []
    try:
        _, warnings = _load(path, kind, environ, errors.append)
    except ConfigError as err:
        return [*errors, err], []
    return errors, warnings


def _load(path: str | None, kind: str, environ,
          report) -> tuple[dict, list[ConfigError]]:
    if kind not in SPECS:
        raise ValueError(f"unknown config kind {kind!r}; expected one of {', '.join(KINDS)}")
    spec = SPECS[kind]
    lines = [] if path is None else _read_lines(path)
    cfg = _parse(path, lines, spec)
    known = {name: set(cfg.configspec[name].scalars) for name in cfg.configspec.sections}
    try:
        translated = legacy.translate(cfg, kind, known)
    except legacy.LegacyError as err:
        raise ConfigError(path, str(err), err.section, err.key) from None
    environ = os.environ if environ is None else environ
    from_env = skydns2.fill_from_environment(cfg, known, environ)
    if kind == "cloudstack":
        from_env.update(exporterenv.fill_from_environment(cfg, known, environ))
    _check_structure(path, cfg, report)
    _glue_subdomain_comment(cfg)

    outcome = cfg.validate(Validator(_CHECKS), preserve_errors=True, copy=True)
    if outcome is not True:
        for sections, key, error in flatten_errors(cfg, outcome):
            section = sections[0] if sections else None
            reason = str(error) if error else "missing value"
            if (section, key) in from_env:
                reason += f" (from the environment variable {from_env[section, key]})"
            report(ConfigError(path, reason, section, key))

    result = {name: dict(cfg[name]) for name in cfg.configspec.sections}
    if outcome is True:
        _post_process(path, kind, result, report)
    elif report is not _raise:
        # Collecting every error: the checks between keys still say something about the keys
        # that are valid; one tripping over an invalid value has nothing to add to its error.
        try:
            _post_process(path, kind, result, report)
        except Exception:
            pass
    warnings = [
        ConfigError(path, f"ignored: {why}", section, key)
        for section, key, why in translated.warnings
    ]
    return result, warnings


def load_or_exit(path: str | None, kind: str, program: str | None = None,
                 warn: bool = True) -> dict:
    """load_config for a daemon's main(): a bad config is one stderr line and exit status 2.

    Both name the program (`skydns-scanner: config error: ...`); each warning is one line too
    (warn=False where another process of the same program has said it already).
    """
    program = program or PROGRAMS[kind]
    try:
        cfg, warnings = load_config_warnings(path, kind)
    except ConfigError as err:
        print(f"{program}: config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if warn:
        for warning in warnings:
            print(f"{program}: config warning: {warning}", file=sys.stderr)
    return cfg
