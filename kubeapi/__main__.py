"""`skydns-kubeapi`: the REST API that writes records to etcd.

skydns-kubeapi --config-file /etc/skydns/skydns-api.conf
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import sys

from skydns import cli, daemon, notify
from skydns.config import ConfigError, load_or_exit
from skydns.holder import describe, port_holder
from skydns.logsetup import setup_logging

log = logging.getLogger("skydns.kubeapi")

DESCRIPTION = """\
REST API for the records of [General] domain, stored in etcd where the skydns DNS servers
read them. Routes (token via ?token= or 'Authorization: Bearer'; /healthz needs none):
  GET    /skydns/api[?type=A]      list every name of the zone (JSON; plain SkyDNS keys
                                   too, marked "readonly")
  GET    /skydns/api/NAME          one name's records (JSON)
  POST   /skydns/api/NAME          add: {"type":"A","ips":["192.168.10.1"]}
                                   {"type":"cname","alias":"tv1"} makes tv1 an alias of NAME
  PUT    /skydns/api/NAME          swap: {"type":"A","update":{"OLD":"NEW"}}
  DELETE /skydns/api/NAME          remove: {"type":"A","ips":[...]}, no body: the whole name
  GET    /healthz                  200 OK while etcd answers
  GET    /                         status page (HTML; reads the data below with ?token=)
  GET    /skydns/status[/events]   names, addresses, UP/DOWN, scanners, leader (JSON / SSE);
                                   token unless [SkydnsApi] status-public = true
  GET    /skydns/health[/IP]       every address: status, since, reason, checker,
                                   maintenance, names; scanners, leader (one IP: + history)
  PUT    /skydns/health/IP/maintenance   {"reason":"..."}: out of every answer until
  DELETE /skydns/health/IP/maintenance   cleared (token as for record writes)
  GET    /metrics                  Prometheus counters (no token)
NAME is relative to the zone (cctv2) or fully qualified inside it (cctv2.skydns.local).
Writes answer OK (201/200), errors one line 'ERR, <reason>' with a 4xx/5xx status.
SIGTERM or SIGINT stops the server; SIGHUP reloads the tokens and [Log] (other changes
need a restart).
With [Kube2Skydns] kube-enable = true it also keeps records for a Kubernetes cluster's
Services and EndpointSlices (<svc>.<ns>.svc.<domain>, owner 'kubernetes'; list + watch,
resumed, relisted on 410 and compared with etcd); api-enable = false then runs only that."""


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns-kubeapi",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config keys: [General] domain; [SkydnsApi] api-enable, api-address, "
        "skydns-auth (admin token), max-body, status-public; [Tokens] owner = token; "
        "[Kube2Skydns] kube-enable, kube-master, kube-token-file, kube-cafile, kube-config, "
        "kube-namespaces, kube-ip-source, kube-watch-timeout, kube-backoff-max (Services and "
        "EndpointSlices -> records owned by 'kubernetes', see docs/kubernetes.md); [Etcd]; "
        "[Log]. "
        "See kubeapi/README.md and etc/skydns-api.conf.",
    )
    parser.add_argument(
        "--config-file",
        "-config-file",
        metavar="PATH",
        default=None,
        help="INI config file (see etc/skydns-api.conf); built-in defaults apply without one",
    )
    return parser


def request_deadline(etcd_section: dict) -> float:
    """How long one request may keep retrying etcd before it answers 503."""
    return max(1.0, 2 * float(etcd_section.get("etcd-timeout") or 5.0))


# Keys a running API cannot change: a reload that changes them says a restart is needed.
_RESTART_KEYS = (("General", "domain"), ("SkydnsApi", "api-address"), ("SkydnsApi", "max-body"),
                 ("SkydnsApi", "status-public"), ("SkydnsApi", "api-enable"))
_RESTART_SECTIONS = ("Etcd", "Kube2Skydns")


class ApiProcess:
    """The API's life under skydns.daemon.serve: `run` until stopped; `reconfigure` on SIGHUP
    (the daemon has re-read the file and applied [Log]; a bad file never gets here)."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.auth = None

    def reconfigure(self, cfg: dict) -> None:
        """Tokens at once (rotating a token needs no restart); the rest is reported."""
        if self.auth is not None:
            self.auth.replace(cfg["SkydnsApi"]["skydns-auth"], cfg.get("Tokens", {}))
        running = self.cfg
        stale = [f"[{section}] {key}" for section, key in _RESTART_KEYS
                 if cfg[section][key] != running[section][key]]
        stale += [f"[{name}]" for name in _RESTART_SECTIONS if cfg[name] != running[name]]
        log.info("config reloaded", extra={"kv": {"owners": len(cfg.get("Tokens", {}))}})
        if stale:
            log.warning("changes that need a restart were not applied",
                        extra={"kv": {"keys": ", ".join(stale)}})

    async def run(self, stop: asyncio.Event) -> None:
        await serve(self.cfg, stop, self)


async def serve(cfg: dict, stop: asyncio.Event, process: ApiProcess) -> None:
    from aiohttp import web

    from skydns.connlimit import ConnectionLimits

    from .auth import Authenticator
    from .etcd import EtcdStore
    from .metrics import ApiMetrics
    from .plan import Layout
    from .routes import make_app
    from .service import RecordService
    from .slowclients import GuardedSite
    from .statusfeed import StatusFeed

    api, etcd = cfg["SkydnsApi"], cfg["Etcd"]
    zone = cfg["General"]["domain"]
    auth = process.auth = Authenticator(api["skydns-auth"], cfg.get("Tokens", {}))
    if not auth.configured:
        log.warning("no tokens configured ([SkydnsApi] skydns-auth and [Tokens] are empty): "
                    "every request except /healthz will be refused with 401")
    store = EtcdStore(etcd)
    layout = Layout(zone, etcd["status-path"], etcd["refs-path"])
    service = RecordService(store, layout, request_deadline(etcd))
    feed = StatusFeed(etcd, zone)
    # Deleting an address' last API record must keep its status key while a record written
    # another way still holds it; the feed's zone mirror says which do.
    service.holders = feed.holders
    kube = None
    if cfg["Kube2Skydns"]["kube-enable"]:
        from .kubesync import KubeSync

        kube = KubeSync(cfg["Kube2Skydns"], store, layout)
        kube.holders = feed.holders
    metrics = ApiMetrics(store, service, feed, kube=kube.stats if kube else None)
    runner = None
    host, port = api["api-address"]
    if api["api-enable"]:
        app = make_app(service, auth, zone, api["max-body"], feed=feed, metrics=metrics,
                       status_public=api["status-public"], read_timeout=api["read-timeout"],
                       etcd_paths=etcd)
        # keepalive_timeout: an idle connection between requests is closed after this long
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               keepalive_timeout=api["keepalive-timeout"])
        await runner.setup()
        try:
            limits = ConnectionLimits(api["max-connections"], api["max-per-client"])
            await GuardedSite(runner, host, port, reuse_address=True, backlog=1024,
                              head_timeout=api["read-timeout"], limits=limits).start()
        except OSError as err:
            await runner.cleanup()
            await store.close()
            why = err.strerror or str(err)
            if err.errno == errno.EADDRINUSE:  # one API per address: say who has it
                why = f"in use by {describe(port_holder('tcp', port))}"
            raise SystemExit(f"skydns-kubeapi: cannot listen on {host}:{port}: {why}") from None
    # The status view fills from etcd in the background: the API itself does not need it
    # (until it is loaded the page says so, and deletes read the zone to find holders).
    # Started without the API too: the Kubernetes sync's deletes use its zone mirror.
    await feed.start()
    if kube is not None:
        # In the background: an unreachable API server must not keep the REST API down.
        await kube.start()
        log.info("Kubernetes sync started", extra={"kv": {
            "master": cfg["Kube2Skydns"]["kube-master"] or cfg["Kube2Skydns"]["kube-config"]
            or "in-cluster", "namespaces": ",".join(cfg["Kube2Skydns"]["kube-namespaces"])
            or "*"}})
    if runner is None:
        log.info("[SkydnsApi] api-enable is false: only the Kubernetes sync runs")
    else:
        log.info("listening", extra={"kv": {"address": f"{host}:{port}", "zone": zone,
                                            "owners": len(cfg.get("Tokens", {})),
                                            "status_public": api["status-public"]}})
    notify.ready(f"serving {zone} on {host}:{port}")
    try:
        await stop.wait()
    finally:
        notify.stopping()
        log.info("stopping")
        feed.closed.set()  # ends the open event streams, so the shutdown need not wait
        if kube is not None:
            await kube.stop()
        if runner is not None:
            await runner.cleanup()
        await feed.stop()
        await store.close()


@cli.entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_or_exit(args.config_file, "api")
    kube = cfg["Kube2Skydns"]
    if (kube["kube-enable"] and not kube["kube-master"] and not kube["kube-config"]
            and not os.environ.get("KUBERNETES_SERVICE_HOST")):
        err = ConfigError(args.config_file, "kube-enable is true but there is no API server: "
                          "set kube-master or kube-config (or run in a pod)",
                          "Kube2Skydns", "kube-master")
        print(f"skydns-kubeapi: config error: {err}", file=sys.stderr)
        return 2
    setup_logging(cfg["Log"], "skydns-kubeapi")
    if not cfg["SkydnsApi"]["api-enable"] and not cfg["Kube2Skydns"]["kube-enable"]:
        log.info("[SkydnsApi] api-enable is false (and [Kube2Skydns] kube-enable too): "
                 "nothing to serve")
        return 0
    daemon.serve(lambda: ApiProcess(cfg), config_path=args.config_file, kind="api",
                 program="skydns-kubeapi", logger=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
