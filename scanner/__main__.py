"""`skydns-scanner`: the health agent.

    skydns-scanner --config-file /etc/skydns/skydns-scanner.conf
"""

from __future__ import annotations

import logging
import resource
import sys

from skydns import cli, daemon
from skydns.config import load_or_exit
from skydns.logsetup import kv, setup_logging

log = logging.getLogger("skydns.scanner")

# Sockets a scanner needs beyond its probes: etcd channels, log files, stdio.
_FD_RESERVE = 64


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns-scanner",
        description="Health agent: registers heart/<hostname> on an etcd lease (TTL "
        "agent-downtime), probes the addresses the scheduler assigns to it in report/<ip> "
        "every check-interval (ICMP echo and TCP connect to the status value's ports, else "
        "scann-ports, and its HTTP(S) checks, which must all pass), and writes status/<ip> "
        "UP or DOWN after rise successes or fall failures in a row; a DOWN only once "
        "[Check] confirm other live scanners found the address failing too (confirmedby). "
        "Finding most of its addresses failing while others reach them, it declares itself "
        "isolated (heartbeat value) and its addresses go to the others. SIGHUP reloads the "
        "config ([Check], enable-check and [Log] at once; the rest needs a restart). "
        "SIGTERM or SIGINT revokes the lease and stops, so the scheduler moves the "
        "addresses at once. Prometheus metrics at http://<metrics-addr>/metrics when "
        "metrics-addr is set.",
    )
    parser.add_argument(
        "--config-file",
        "-config-file",
        metavar="PATH",
        default=None,
        help="INI config file (see etc/skydns-scanner.conf); built-in defaults apply without one",
    )
    return parser


def raise_fd_limit(wanted: int) -> None:
    """Lift the soft open-files limit towards what max-concurrency needs (up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if new > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError) as exc:
            # An "unlimited" hard limit still has a kernel ceiling (fs.nr_open); a scanner
            # with fewer sockets than it wanted still works, so this must not stop it.
            log.warning("cannot raise the open-files limit; probes beyond it will wait or be "
                        "skipped", extra=kv(limit=soft, wanted=wanted, error=str(exc)))
            return
    if new < wanted:
        log.warning("open-files limit is below what max-concurrency needs; probes beyond it "
                    "will wait or be skipped", extra=kv(limit=new, wanted=wanted))


@cli.entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_or_exit(args.config_file, "scanner")
    setup_logging(cfg["Log"], "skydns-scanner")
    raise_fd_limit(cfg["Check"]["max-concurrency"] + _FD_RESERVE)

    from .agent import Agent
    from .metrics import registry_for

    daemon.serve(lambda: Agent(cfg), config_path=args.config_file, kind="scanner",
                 program="skydns-scanner", metrics_addr=cfg["General"]["metrics-addr"],
                 registry_for=registry_for, logger=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
