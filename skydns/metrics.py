"""Prometheus `/metrics` for the daemons, with prometheus-client.

Each daemon builds its own CollectorRegistry (so tests can run several in one process) and
calls `serve_metrics(addr, registry)` with its `metrics-addr`; an empty address turns it off.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger("skydns.metrics")


def parse_addr(text: str) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve_metrics(addr: str | tuple[str, int] | None, registry: CollectorRegistry):
    """Serve `registry` at http://addr/metrics in a daemon thread; None when disabled/failed."""
    if isinstance(addr, str):
        addr = parse_addr(addr)
    if not addr:
        return None
    try:
        server, _thread = start_http_server(addr[1], addr=addr[0], registry=registry)
    except OSError as err:
        log.error("metrics server cannot listen",
                  extra={"kv": {"addr": f"{addr[0]}:{addr[1]}", "error": str(err)}})
        return None
    log.info("metrics server", extra={"kv": {"addr": f"{addr[0]}:{addr[1]}"}})
    return server
