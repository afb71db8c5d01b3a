"""The configs of `skydns up`: each file of the config dir rewritten into the data dir for one
machine (the local etcd, demo host names, distinct ports, fast intervals), then validated.

Keys not listed here stay as the user set them, comments included (configobj round-trips).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from skydns.config import ConfigError, load_config

SCANNERS = ("scanner-a", "scanner-b")
SCHEDULERS = ("sched-a", "sched-b")
API = "skydns-kubeapi"
JANITOR = "skydns-janitor"
# The demo's zone: dig warns about every .local name (reserved for multicast DNS); .test is
# reserved for testing (RFC 6761). Configs that set no dns-domain keep skydns.local.
DEMO_DOMAIN = "skydns.test."

# Fast enough that a stopped backend leaves the answers within seconds, with the daemons' own
# rise/fall damping still in place.
SCANNER_DEMO = {
    "General": {"heartbeat-interval": "1", "agent-downtime": "3", "enable-check": "true"},
    # Loopback always answers ping, so only the TCP probe can tell a stopped backend.
    "Check": {"check-interval": "1", "check-timeout": "0.5", "enable-icmp": "false"},
}
SCHEDULER_DEMO = {"General": {"schedule-interval": "2", "agent-downtime": "3"}}


@dataclass(frozen=True)
class Ports:  # noqa: B903 - a value with one derived view
    dns: int
    api: int
    base: int  # skydns stats, then the metrics of each scanner and scheduler
    backend: int

    # skydns stats, the metrics of each scanner and scheduler, and the janitor's (--recursor)
    METRICS = ("skydns", *SCANNERS, *SCHEDULERS, JANITOR)

    def metrics(self) -> dict[str, int]:
        return {name: self.base + i for i, name in enumerate(self.METRICS)}


@dataclass(frozen=True)
class Component:
    name: str
    kind: str  # the load_config kind
    module: str  # python -m <module>
    path: Path
    cfg: dict


def _common(etcd: str) -> dict[str, dict[str, str]]:
    # The demo's etcd is plain http on loopback; log files are the captured stdio (one file per
    # component, where two scanners would otherwise share skydns-scanner.log).
    return {
        "Etcd": {"etcd-servers": etcd, "etcd-certfile": "", "etcd-keyfile": "",
                 "etcd-cafile": ""},
        "Log": {"log-dir": "", "log-to-stdio": "true"},
    }


def _merge(*layers: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def rewrite(src: Path, dst: Path, kind: str, changes: dict[str, dict[str, str]]) -> dict:
    """`src` (or all defaults when missing) with `changes`, written to `dst` and loaded."""
    from configobj import ConfigObj

    conf = ConfigObj(str(src) if src.exists() else None, encoding="utf-8")
    conf.filename = str(dst)
    for section, values in changes.items():
        conf.setdefault(section, {})
        conf[section].update(values)
    conf.write()
    try:
        return load_config(str(dst), kind)
    except ConfigError as err:
        raise RuntimeError(f"the demo config made from {src} does not load: {err}") from None


def api_token(data: Path) -> str:
    """The demo's admin token, kept in the data dir so an exported token survives a restart."""
    path = data / "api-token"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def write_configs(
    config_dir: Path, data: Path, etcd: str, ports: Ports, token: str,
    domain: str = DEMO_DOMAIN,
) -> dict[str, Component]:
    """Every component's config, keyed by component name (skydns, scanner-a, ...)."""
    metrics = ports.metrics()
    common = _common(etcd)
    out: dict[str, Component] = {}

    def add(name: str, kind: str, module: str, src: str, dst: str, *layers) -> None:
        path = data / dst
        cfg = rewrite(config_dir / src, path, kind, _merge(common, *layers))
        out[name] = Component(name, kind, module, path, cfg)

    add("skydns", "dns", "dnsserver", "skydns.conf", "skydns.conf", {
        "Dns": {"dns-addr": f"127.0.0.1:{ports.dns}", "dns-domain": domain},
        "Stats": {"statsServer": f"127.0.0.1:{metrics['skydns']}"},
    })
    zone = out["skydns"].cfg["Dns"]["dns-domain"]
    for name in SCANNERS:
        add(name, "scanner", "scanner", "skydns-scanner.conf", f"{name}.conf", SCANNER_DEMO, {
            "General": {"hostname": name, "metrics-addr": f"127.0.0.1:{metrics[name]}"},
            # The API gives its addresses no ports; the scanners then probe these.
            "Check": {"scann-ports": str(ports.backend)},
        })
    for name in SCHEDULERS:
        add(name, "schedule", "scheduler", "skydns-schedule.conf", f"{name}.conf",
            SCHEDULER_DEMO,
            {"General": {"hostname": name, "metrics-addr": f"127.0.0.1:{metrics[name]}"}})
    add(API, "api", "kubeapi", "skydns-api.conf", "skydns-api.conf", {
        "General": {"domain": zone},
        "SkydnsApi": {"api-enable": "true", "api-address": f"127.0.0.1:{ports.api}",
                      "skydns-auth": token},
    })
    return out
