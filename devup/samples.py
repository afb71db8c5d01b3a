"""The demo's data: sample records written straight to etcd (SkyDNS style), the monitor keys of
the backends `skydns up` listens on, and one record created through the API.

    web   A      127.0.10.1, .2 (listening), .3 (not listening: the scanners find it DOWN)
    www   CNAME  web            db  SRV  two targets, weights 60/40
    motd  TXT                   ns1.ns.dns  A (the zone's NS)      PTR of 127.0.10.1
    app   A      127.0.10.4 (listening), with its PTR: created with a POST to the API
"""

from __future__ import annotations

from skydns.keys import name_to_key, name_to_path, path_to_key, reverse_name

from .etcd import etcdctl, put_json

LISTENING = ("127.0.10.1", "127.0.10.2")
STOPPED = "127.0.10.3"
WEB = (*LISTENING, STOPPED)
API_IP = "127.0.10.4"
TOGGLED = "127.0.10.2"  # the backend SIGUSR1 stops and starts
API_RECORD = ("app", {"type": "A", "ips": [API_IP], "ptr": True})


def sample_records(zone: str) -> dict[str, dict]:
    def key(name: str) -> str:
        return name_to_key(f"{name}.{zone}")

    return {
        key("a.web"): {"host": WEB[0], "ttl": 60},
        key("b.web"): {"host": WEB[1], "ttl": 60},
        key("c.web"): {"host": WEB[2], "ttl": 60},
        key("x.www"): {"host": f"web.{zone}"},
        key("1.db"): {"host": "127.0.20.1", "port": 5432, "priority": 10, "weight": 60},
        key("2.db"): {"host": "127.0.20.2", "port": 5432, "priority": 10, "weight": 40},
        key("x.motd"): {"text": "skydns demo: stop a backend and watch it leave the answers"},
        key("ns1.ns.dns"): {"host": "127.0.0.1"},
        path_to_key(name_to_path(reverse_name(WEB[0]))): {"host": f"web.{zone}"},
    }


def load_samples(endpoint: str, zone: str) -> bool:
    """Write the sample records into an empty zone; False when records were there already."""
    if etcdctl(endpoint, "get", "--prefix", "--keys-only", name_to_key(zone)).strip():
        return False  # keep what an earlier run (or the user) put there
    for key, value in sample_records(zone).items():
        put_json(endpoint, key, value)
    return True


def monitor_backends(endpoint: str, status_path: str, port: int) -> None:
    """Have the scanners probe the web addresses on `port`, from an unknown status.

    Rewritten on every start: the listeners are new each run (maybe on another port), so an
    earlier run's verdict says nothing about them; the scanners must find it again.
    """
    for ip in WEB:
        put_json(endpoint, status_path + ip, {"ports": [port]})
