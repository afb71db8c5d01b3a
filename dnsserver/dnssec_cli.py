"""`skydns dnssec ds`: the DS records (SHA-256) of the configured keys, for the parent zone."""

from __future__ import annotations

import sys

from skydns import cli
from skydns.config import load_or_exit


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="skydns dnssec",
        description="DNSSEC helpers for the keys in [Dns] dnssec (BIND key files from "
        "dnssec-keygen). 'ds' prints the DS records (digest type 2, SHA-256) of the key-signing "
        "keys (flags 257) to hand to the parent zone, one per line, as dnssec-dsfromkey -2 does.",
    )
    parser.add_argument("command", choices=["ds"], help="ds: print the DS records")
    parser.add_argument("--config-file", "-config-file", metavar="PATH", default=None)
    args = parser.parse_args(argv)
    cfg = load_or_exit(args.config_file, "dns", "skydns dnssec")
    keys = cfg["Dns"]["dnssec"]
    if not keys:
        print("skydns dnssec: no keys configured ([Dns] dnssec is empty)", file=sys.stderr)
        return 2
    ksks = [k for k in keys if k.ksk] or keys  # a zone of ZSKs only hands those up
    for key in ksks:
        print(key.ds())
    return 0
