"""etcdctl for `skydns up`: loading the sample data and reading the monitor keys.

etcdctl rather than an etcd client library: the up process stays free of gRPC's threads, so
forking its children (with a pre-exec hook) stays safe.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass

from .localetcd import find_binary


def etcdctl(endpoint: str, *args: str, data: bytes | None = None) -> str:
    cmd = [find_binary("etcdctl"), "--endpoints", endpoint, "--command-timeout=2s", *args]
    out = subprocess.run(
        cmd,
        input=data,
        capture_output=True,
        check=True,
        env={**os.environ, "ETCDCTL_API": "3"},
        # Its own session: a Ctrl-C in the terminal must reach only `skydns up`, which then
        # stops things in order, not kill an etcdctl halfway through loading the samples.
        start_new_session=True,
    )
    return out.stdout.decode()


def put_json(endpoint: str, key: str, value: dict) -> None:
    etcdctl(endpoint, "put", "--", key, data=json.dumps(value).encode())


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes
    create_revision: int

    def json(self) -> dict:
        try:
            obj = json.loads(self.value)
        except (ValueError, RecursionError):
            return {}
        return obj if isinstance(obj, dict) else {}


def get_prefix(endpoint: str, prefix: str) -> list[Entry]:
    """Every key under `prefix`; an etcd that does not answer reads as empty."""
    try:
        out = etcdctl(endpoint, "get", "--prefix", "-w", "json", prefix)
    except (subprocess.CalledProcessError, OSError):
        return []
    return [
        Entry(
            base64.b64decode(kv["key"]).decode(errors="replace"),
            base64.b64decode(kv.get("value", "")),
            int(kv.get("create_revision", 0)),
        )
        for kv in json.loads(out or "{}").get("kvs", [])
    ]


def tails(entries: list[Entry], prefix: str) -> dict[str, Entry]:
    """{last key segment (an IP, a hostname): entry} of the keys under `prefix`."""
    return {e.key[len(prefix):]: e for e in entries if e.key.startswith(prefix)}
