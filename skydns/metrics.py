"""Prometheus `/metrics` for the daemons, with prometheus-client.

Each daemon builds its own CollectorRegistry (so tests can run several in one process) and
calls `serve_metrics(addr, registry)` with its `metrics-addr`; an empty address turns it off.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server

from .cli import package_version  # noqa: F401 - re-exported for the *_info metrics

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


def stop_metrics(server) -> None:
    """Close what serve_metrics opened (None, for a disabled server, is fine)."""
    if server is not None:
        server.shutdown()
        server.server_close()


def snapshot(read, attempts: int = 20):
    """read() from the scrape thread while the event loop thread may be changing the same
    dict or set: a RuntimeError ("changed size during iteration") just means try again."""
    for _ in range(attempts - 1):
        try:
            return read()
        except RuntimeError:
            continue
    return read()


