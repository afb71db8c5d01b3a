"""`skydns`: the health-aware DNS responder.

skydns --config-file /etc/skydns/skydns.conf
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from skydns.config import load_or_exit
from skydns.logsetup import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skydns",
        description="Health-aware DNS: answers for dns-domain from etcd, leaving out addresses "
        "whose status is DOWN; forwards other names to the configured nameservers.",
    )
    parser.add_argument(
        "--config-file",
        "-config-file",
        metavar="PATH",
        default=None,
        help="INI config file (see etc/skydns.conf); defaults apply without one",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_or_exit(args.config_file, "dns")
    setup_logging(cfg["Log"], "skydns")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep working without it
        uvloop = None
    from .server import DnsServer

    async def run() -> None:
        await DnsServer(cfg).serve_forever()

    try:
        if uvloop is not None:
            uvloop.run(run())
        else:
            asyncio.run(run())
    except OSError as err:
        print(f"skydns: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
