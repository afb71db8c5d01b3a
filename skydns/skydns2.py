"""SkyDNS2's ways of configuring a server, beside the INI file: environment and etcd.

- Environment (containers configure this way): ETCD_MACHINES, ETCD_TLSKEY, ETCD_TLSPEM,
  ETCD_CACERT, SKYDNS_ADDR, SKYDNS_DOMAIN, SKYDNS_NAMESERVERS supply their setting where the
  config file leaves it unset or empty; `fill_from_environment` puts them into the parsed file
  before validation, so a bad value gets the same one-line error as in the file.
- Runtime settings: the JSON object at `/skydns/config` (dns_addr, domain, ttl, min_ttl,
  nameservers, hostmaster, local, round_robin) overrides the file, as in SkyDNS2.
  `apply_runtime_settings` is the pure part: a bad value is reported and ignored, never fatal.
Pure: no etcd here (dnsserver/settings.py reads the key).
"""

from __future__ import annotations

import copy
import json

SETTINGS_KEY = "/skydns/config"

# environment variable -> (section, key); a pair applies where the program's spec has it.
ENVIRONMENT = {
    "ETCD_MACHINES": ("Etcd", "etcd-servers"),
    "ETCD_TLSKEY": ("Etcd", "etcd-keyfile"),
    "ETCD_TLSPEM": ("Etcd", "etcd-certfile"),
    "ETCD_CACERT": ("Etcd", "etcd-cafile"),
    "SKYDNS_ADDR": ("Dns", "dns-addr"),
    "SKYDNS_DOMAIN": ("Dns", "dns-domain"),
    "SKYDNS_NAMESERVERS": ("Dns", "nameservers"),
}
_LISTS = {"etcd-servers", "nameservers"}


def _unset(value) -> bool:
    if isinstance(value, list):
        return not any(str(v).strip() for v in value)
    return not str(value).strip()


def fill_from_environment(cfg, known: dict, environ, table=None, lists=_LISTS,
                          wanted=None) -> dict[tuple[str, str], str]:
    """Set each variable's key in the parsed file `cfg` where the file leaves it unset.

    `known` maps section -> the program's keys; `table` is variable -> (section, key)
    (SkyDNS2's by default), `lists` the keys a comma makes a list, `wanted(variable, section,
    key)` a program's own reasons to pass a variable over. Returns {(section, key): variable}
    for the keys it set, so that an error in one can name the variable.
    """
    used = {}
    for variable, (section, key) in (ENVIRONMENT if table is None else table).items():
        value = environ.get(variable, "").strip()
        if not value or key not in known.get(section, ()):
            continue
        if wanted is not None and not wanted(variable, section, key):
            continue
        if section in cfg and key in cfg[section] and not _unset(cfg[section][key]):
            continue  # the file says it: the file wins
        if section not in cfg:
            cfg[section] = {}
        items = [item.strip() for item in value.split(",")]
        cfg[section][key] = items if key in lists and len(items) > 1 else value
        used[section, key] = variable
    return used


# --------------------------------------------------------------------------- /skydns/config


def _text(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {json.dumps(value)}")
    return value.strip()


def _seconds(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise ValueError(f"expected a whole number of seconds, got {json.dumps(value)}")
    return value


def _hostmaster(value) -> str:
    from .config import _domain

    # SkyDNS2 writes it as a mail address: hostmaster@skydns.local. -> hostmaster.skydns.local.
    return _domain(_text(value).replace("@", ".", 1))


def _setters():
    from .config import _domain, _ip_hostport, parse_hostport

    def nameservers(value):
        if not isinstance(value, list):
            raise ValueError(f"expected a list of \"ip:port\", got {json.dumps(value)}")
        return [_ip_hostport(_text(item), 53) for item in value]

    def boolean(value):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {json.dumps(value)}")
        return value

    # JSON field -> (key in [Dns], converter)
    return {
        "dns_addr": ("dns-addr", lambda v: parse_hostport(_text(v), 53)),
        "domain": ("dns-domain", lambda v: _domain(_text(v))),
        "ttl": ("ttl", _seconds),
        "min_ttl": ("min-ttl", _seconds),
        "nameservers": ("nameservers", nameservers),
        "hostmaster": ("hostmaster", _hostmaster),
        "local": ("local", lambda v: _domain(_text(v))),
        "round_robin": ("round-robin", boolean),
    }


def apply_runtime_settings(cfg: dict, raw: bytes | str | None) -> tuple[dict, list[str]]:
    """The DNS server's config with the JSON of /skydns/config laid over its [Dns] section.

    Returns (new config, problems): every field that is unknown or has a bad value is one
    problem line and is left out; the rest still applies. `cfg` itself is not changed.
    """
    if raw is None:
        return cfg, []
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        return cfg, [f"{SETTINGS_KEY}: not valid JSON ({err}); ignored"]
    if not isinstance(obj, dict):
        return cfg, [f"{SETTINGS_KEY}: not a JSON object; ignored"]
    out = copy.deepcopy(cfg)
    problems = []
    setters = _setters()
    for field, value in obj.items():
        if field not in setters:
            problems.append(f"{SETTINGS_KEY}: {field}: not a setting this server takes; ignored")
            continue
        key, convert = setters[field]
        try:
            out["Dns"][key] = convert(value)
        except ValueError as err:
            problems.append(f"{SETTINGS_KEY}: {field}: {err}; ignored")
    return out, problems
