"""`skydns-cloudstack`: CloudStack virtual machines as records, fed by CloudStack's Kafka
event bus.

    skydns-cloudstack --config-file /etc/skydns/skydns-cloudstack.conf
"""

from __future__ import annotations

import logging
import sys

from skydns import cli, daemon
from skydns.config import load_or_exit
from skydns.logsetup import setup_logging

log = logging.getLogger("skydns.cloudstack")


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns-cloudstack",
        description="Consumes CloudStack's events from Kafka (every partition, in the "
        "consumer group [Kafka] group) and keeps one record per virtual machine in etcd: "
        "<vm-name>.<network domain> A/AAAA from its default NIC, the PTR of each address, "
        "<group>-<account8>.<zone> for VM groups, and the same in [Records] common-zone; "
        "owner 'cloudstack', health-checked like every record. Offsets are committed only "
        "once the records are in etcd; an unreachable CloudStack API or etcd is retried, "
        "never skipped. Every [CloudStack] resync-interval seconds (and at start) every VM "
        "is listed and the records reconciled with them. The exporter's environment "
        "variables (KAFKA_BOOTSTRAP, CS_ENDPOINT, ...) fill what the file leaves unset. "
        "SIGTERM stops. Prometheus metrics at http://<metrics-addr>/metrics when "
        "[General] metrics-addr is set.",
    )
    parser.add_argument(
        "--config-file",
        "-config-file",
        metavar="PATH",
        default=None,
        help="INI config file (see etc/skydns-cloudstack.conf); built-in defaults apply "
        "without one",
    )
    return parser


@cli.entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_or_exit(args.config_file, "cloudstack")
    setup_logging(cfg["Log"], "skydns-cloudstack")
    if not cfg["CloudStack"]["endpoint"]:
        print("skydns-cloudstack: config error: [CloudStack] endpoint: not set (the API URL, "
              "e.g. https://cloud.example/client/api)", file=sys.stderr)
        return 2

    from .daemon import CloudStackDaemon

    daemon.serve(lambda: CloudStackDaemon(cfg), config_path=args.config_file,
                 kind="cloudstack", program="skydns-cloudstack",
                 metrics_addr=cfg["General"]["metrics-addr"],
                 registry_for=lambda d: d.metrics.registry, logger=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
