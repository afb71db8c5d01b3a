"""The asyncio main of a long-running component (scanner, scheduler, API, pdns backend):
signals, /metrics, loop.

SIGTERM/SIGINT end `thing.run(stop)`, SIGHUP re-reads the config and hands it to
`thing.reconfigure(cfg)`, and the metrics server runs for the life of the process (up before
`run`, so a scrape during a slow start answers instead of being refused).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine

from .config import ConfigError, load_config
from .logsetup import kv, setup_logging
from .metrics import serve_metrics, stop_metrics

log = logging.getLogger("skydns.daemon")


def run_loop(main: Coroutine) -> None:
    """Run on uvloop; on plain asyncio where uvloop cannot be imported (it is a dependency)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def reload(path: str | None, kind: str, program: str, apply: Callable[[dict], object],
           logger: logging.Logger = log) -> None:
    """SIGHUP: re-read the config of `kind` and apply it; a file that does not load is logged
    and the running config kept, since a typo must not take a running daemon down."""
    try:
        cfg = load_config(path, kind)
    except ConfigError as err:
        logger.error("config reload failed; keeping the running config",
                     extra=kv(error=str(err)))
        return
    setup_logging(cfg["Log"], program)
    apply(cfg)


def serve(build: Callable[[], object], *, config_path: str | None, kind: str, program: str,
          metrics_addr: str | None = None,
          registry_for: Callable[[object], object] | None = None,
          logger: logging.Logger = log) -> None:
    """Run `build()` until SIGTERM/SIGINT; SIGHUP reloads (see reload) into its reconfigure.
    Without registry_for there is no metrics server here (the API serves /metrics itself)."""
    async def main() -> None:
        stop = asyncio.Event()
        thing = build()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload, config_path, kind, program,
                                thing.reconfigure, logger)
        server = serve_metrics(metrics_addr, registry_for(thing)) if registry_for else None
        try:
            await thing.run(stop)
        finally:
            stop_metrics(server)

    run_loop(main())
