"""`skydns-schedule`: the leader-elected assigner of addresses to scanners.

    skydns-schedule --config-file /etc/skydns/skydns-schedule.conf
"""

from __future__ import annotations

import logging
import sys

from skydns import cli, daemon
from skydns.config import load_or_exit
from skydns.logsetup import setup_logging

log = logging.getLogger("skydns.scheduler")


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns-schedule",
        description="Assigns every monitored address (a key under status-path) to one live "
        "scanner (a key under heart-path) by rendezvous hashing, writing report/<ip>. Several "
        "may run: each puts lock/<hostname> on an etcd lease (TTL agent-downtime), the oldest "
        "key leads and the others stand by. SIGHUP reloads the config (schedule-interval and "
        "[Log] at once; the rest needs a restart). SIGTERM or SIGINT resigns and stops. "
        "Prometheus metrics at http://<metrics-addr>/metrics when metrics-addr is set.",
    )
    parser.add_argument(
        "--config-file",
        "-config-file",
        metavar="PATH",
        default=None,
        help="INI config file (see etc/skydns-schedule.conf); built-in defaults apply "
        "without one",
    )
    return parser


@cli.entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_or_exit(args.config_file, "schedule")
    setup_logging(cfg["Log"], "skydns-schedule")

    from .loop import Scheduler
    from .metrics import registry_for

    daemon.serve(lambda: Scheduler(cfg), config_path=args.config_file, kind="schedule",
                 program="skydns-schedule", metrics_addr=cfg["General"]["metrics-addr"],
                 registry_for=registry_for, logger=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
