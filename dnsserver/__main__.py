"""`skydns`: the health-aware DNS responder.

skydns --config-file /etc/skydns/skydns.conf
"""

from __future__ import annotations

import argparse
import sys

from skydns import cli
from skydns.config import load_or_exit
from skydns.logsetup import setup_logging


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns",
        epilog="Subcommands: 'skydns check --help' (configs and etcd data), "
        "'skydns dump --help' (print the zone), "
        "'skydns dnssec ds --config-file PATH' (DS records of the [Dns] dnssec keys), "
        "'skydns resolv-conf --help' (a resolv.conf for hosts and containers), "
        "'skydns up --help' (run the whole suite locally).",
        description="Health-aware DNS: answers for dns-domain from an in-memory copy of etcd, "
        "leaving out addresses whose status is DOWN; forwards other names to the configured "
        "nameservers for allowed clients. Runs [Dns] workers processes sharing the port; "
        "SIGHUP reloads the config (and the SkyDNS2 runtime settings at /skydns/config), "
        "SIGTERM stops. Query logs: [Log] dnstap = unix:/path or tcp:host:port sends every "
        "query and response to a dnstap collector (fstrm_capture, ...). Moving from the "
        "original suite or SkyDNS2: docs/migration.md.",
    )
    parser.add_argument(
        "--config-file",
        "-config-file",
        metavar="PATH",
        default=None,
        help="INI config file (see etc/skydns.conf); built-in defaults apply without one",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


SUBCOMMANDS = {
    "check": "dnsserver.check",  # every problem of the configs and of the data in etcd
    "dump": "dnsserver.dump",  # print the zone from etcd
    "dnssec": "dnsserver.dnssec_cli",  # DS records of the configured keys
    "resolv-conf": "dnsserver.resolvconf",  # a resolv.conf for hosts and containers
    "up": "devup.up",  # start a local etcd and the whole suite, for a demo
}


@cli.entry
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    args = _parser().parse_args(argv)
    # Workers stay quiet about the file's warnings: the supervisor has printed them once.
    cfg = load_or_exit(args.config_file, "dns", warn=not args.worker)
    setup_logging(cfg["Log"], "skydns")
    if not args.worker:
        from .front.workers import Supervisor

        return Supervisor(args.config_file, cfg).run()
    return run_worker(cfg)


def run_worker(cfg: dict) -> int:
    from skydns.daemon import run_loop

    from .front.server import BindError, DnsServer
    from .front.workers import EXIT_BIND, die_with_supervisor

    die_with_supervisor()

    async def run() -> None:
        from .settings import with_runtime_settings

        await DnsServer(await with_runtime_settings(cfg)).serve_forever()

    try:
        run_loop(run())
    except BindError as err:
        print(f"skydns: {err}", file=sys.stderr)
        return EXIT_BIND
    return 0


if __name__ == "__main__":
    sys.exit(main())
