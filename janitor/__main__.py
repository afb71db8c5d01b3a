"""`skydns-janitor`: purges changed names from PowerDNS Recursor caches in front of skydns.

    skydns-janitor --config-file /etc/skydns/skydns-janitor.conf
"""

from __future__ import annotations

import logging
import sys

from skydns import cli, daemon
from skydns.config import load_or_exit
from skydns.logsetup import setup_logging

log = logging.getLogger("skydns.janitor")


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns-janitor",
        description="Watches the records and the health statuses in etcd and, for every "
        "change, purges the names whose answers changed (the name, the names above it that "
        "answer with it, names that CNAME to them, PTR names; for a status flip, the names "
        "holding the address) from each PowerDNS Recursor in [Janitor] recursors, through "
        "its HTTP API (PUT /api/v1/servers/localhost/cache/flush). Bursts are coalesced, a "
        "recursor that is down is retried, one that is slow delays no other. SIGHUP reloads "
        "the config (recursors, api key, timeout, coalesce), SIGTERM stops. Prometheus "
        "metrics at http://<metrics-addr>/metrics when metrics-addr is set.",
    )
    parser.add_argument(
        "--config-file",
        "-config-file",
        metavar="PATH",
        default=None,
        help="INI config file (see etc/skydns-janitor.conf); built-in defaults apply "
        "without one",
    )
    return parser


@cli.entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_or_exit(args.config_file, "janitor")
    setup_logging(cfg["Log"], "skydns-janitor")

    from .watch import Janitor

    daemon.serve(lambda: Janitor(cfg), config_path=args.config_file, kind="janitor",
                 program="skydns-janitor", metrics_addr=cfg["Janitor"]["metrics-addr"],
                 registry_for=lambda janitor: janitor.metrics.registry, logger=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
