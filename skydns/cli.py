"""What every console script shares on its command line.

- `ArgumentParser`: argparse with `--version` and usage errors on one line
  (`skydns up: error: argument --dns-port: '70000' is not a port (1-65535) (see --help)`).
  Every program's parser is one of these, so a new program gets both by using it.
- `port`, `positive_seconds`: flag types that refuse what would only fail later, deep inside
  socket code, as a traceback.
- `entry`: wraps a `main()` so that a closed stdout (`skydns dump | head -2`) ends the program
  quietly, as it does a C tool killed by SIGPIPE, instead of with a BrokenPipeError traceback.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import select
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

EXIT_PIPE = 141  # 128 + SIGPIPE: what the shell shows for a C tool whose reader went away


def package_version() -> str:
    """The installed skydns version: `--version`, and the daemons' *_info metrics."""
    try:
        return version("skydns")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with `--version` and one-line usage errors naming the program."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version",
                          version=f"%(prog)s {package_version()}",
                          help="print the version and exit")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def port(text: str) -> int:
    """A TCP/UDP port flag: 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return value


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return seconds


def stdout_closed() -> bool:
    """Whether stdout is a pipe or socket whose reader has gone (poll says POLLERR)."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, ValueError, OSError):
        return False


def _silence_stdout() -> None:
    # Python flushes stdout once more at exit; that flush must not fail (and print) again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def entry(main: Callable[..., int]) -> Callable[..., int]:
    """A console script's main: a closed stdout ends it with EXIT_PIPE and no traceback.
    Only a BrokenPipeError of stdout itself: one from a socket is a bug and stays loud."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()  # inside the try: the last lines may still be buffered
            return code
        except BrokenPipeError:
            if not stdout_closed():
                raise
            _silence_stdout()
            return EXIT_PIPE

    return run
