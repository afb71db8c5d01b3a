"""`skydns dump`: the zone as it is answered, in presentation format or JSON.

    skydns dump --config-file etc/skydns.conf [--zone in-addr.arpa.] [--json] [--raw]

Reads etcd once (no watch) through the same sync and zone code the server uses, so what it
prints is what an AXFR from skydns sends (served.py: aggregated names, DOWN addresses left
out), read from the same record stream (zone/transfer.py, zone/rows.py) at a few times an AXFR's
cost (bench/README.md) and printed as it comes. `--raw` prints the etcd leaves instead, one
record at its own key's name, with the health of each address as a comment.
"""

from __future__ import annotations

import asyncio
import json
import sys

from skydns import cli, store
from skydns.config import load_or_exit
from skydns.keys import name_to_path, path_to_name
from skydns.logsetup import setup_logging

from .engine import zone_settings
from .zone.context import REVERSE_ZONES
from .zone.records import zone_rrs
from .zone.rows import T_A, T_AAAA, plain_rows, served_rows, type_name
from .zone.state import ZoneState
from .zone.sync import RECORDS_PREFIX, StoreSync
from .zone.transfer import PAUSE, Snapshot


async def load(cfg: dict) -> ZoneState:
    state = ZoneState(zone_settings(cfg))
    sync = StoreSync(state, cfg["Etcd"])
    client = store.make_client(cfg["Etcd"])
    try:
        kvs, revision = await store.load_prefix(client, RECORDS_PREFIX)
        sync.on_records_reset(kvs, revision)
        if not sync.status_in_records:
            status, _ = await store.load_prefix(client, sync.status_path)
            sync.on_status_reset(status, revision)
    finally:
        await client.close()
    return state


def rows(state: ZoneState, zone: str, raw: bool = False):
    """(owner, TTL, type, data, etcd key or None, health or "") of each record to print."""
    if not raw:
        # nothing is kept: the process prints the zone once
        for piece in served_rows(Snapshot(state, keep=False), name_to_path(zone)):
            if piece is not PAUSE:
                for row in piece:
                    yield row.name, row.ttl, type_name(row.rtype), row.data, None, ""
        return
    for rr, rec in zone_rrs(state, name_to_path(zone)):
        (row,) = plain_rows([rr])
        health = ""
        if rec is not None and rec.ip and row.rtype in (T_A, T_AAAA):
            health = "DOWN" if state.health.is_down(rec.ip) else "UP"
        key = rec.key if rec is not None else None
        yield row.name, row.ttl, type_name(row.rtype), row.data, key, health


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="skydns dump",
        description="Print a zone from etcd in presentation format (name TTL IN TYPE data) as "
        "skydns answers it: the same records an AXFR sends.",
    )
    parser.add_argument("--config-file", "-config-file", metavar="PATH", default=None)
    parser.add_argument("--zone", default=None, help="zone to print (default: dns-domain)")
    parser.add_argument("--json", action="store_true", help="one JSON object per record")
    parser.add_argument("--raw", action="store_true",
                        help="the etcd leaves instead: each record at its key's name, with the "
                        "health of each address as a comment")
    args = parser.parse_args(argv)
    cfg = load_or_exit(args.config_file, "dns", "skydns dump", warn=False)
    cfg["Log"]["log-level"] = "warning"  # keep stdout/stderr for the zone itself
    setup_logging(cfg["Log"], "skydns-dump")
    zone = (args.zone or cfg["Dns"]["dns-domain"]).lower().rstrip(".") + "."
    domain = cfg["Dns"]["dns-domain"].lower().rstrip(".") + "."
    if name_to_path(zone) not in (name_to_path(domain), *REVERSE_ZONES):
        served = ", ".join([domain, *(path_to_name(z) for z in REVERSE_ZONES)])
        print(f"skydns dump: {zone} is not a zone skydns serves ({served})", file=sys.stderr)
        return 2
    try:
        state = asyncio.run(asyncio.wait_for(load(cfg), cfg["Etcd"]["etcd-timeout"] * 3))
    except Exception as err:
        print(f"skydns dump: cannot read etcd: {store.describe_error(err)}", file=sys.stderr)
        return 1
    out = sys.stdout
    for name, ttl, rtype, data, key, health in rows(state, zone, args.raw):
        if args.json:
            obj = {"name": name, "ttl": ttl, "class": "IN", "type": rtype, "data": data}
            if key is not None:
                obj["key"] = key
            if health:
                obj["health"] = health
            out.write(json.dumps(obj) + "\n")
        else:
            line = f"{name} {ttl} IN {rtype} {data}"
            out.write(line + (f" ; {health}" if health else "") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
