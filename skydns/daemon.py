"""The asyncio main of a long-running component (scanner, scheduler): signals, /metrics, loop.

SIGTERM/SIGINT end `thing.run(stop)`, SIGHUP calls `reload(config_path, thing)`, and the
metrics server runs for the life of the process (up before `run`, so a scrape during a slow
start answers instead of being refused).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine

from .metrics import serve_metrics, stop_metrics


def run_loop(main: Coroutine) -> None:
    """Run on uvloop; on plain asyncio where uvloop cannot be imported (it is a dependency)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def serve(build: Callable[[], object], *, config_path: str | None,
          reload: Callable[[str | None, object], None], metrics_addr: str,
          registry_for: Callable[[object], object]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        thing = build()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload, config_path, thing)
        server = serve_metrics(metrics_addr, registry_for(thing))
        try:
            await thing.run(stop)
        finally:
            stop_metrics(server)

    run_loop(main())
