"""Children that die with their parent (Linux PR_SET_PDEATHSIG), for `skydns up`.

Should the parent be killed outright (SIGKILL, OOM), the kernel sends each child SIGTERM, so
a demo never leaves an etcd or a daemon behind holding its ports.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
try:
    # Loaded here, in the parent: the pre-exec hook runs between fork and exec, where loading
    # a library is not safe.
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def tie_to(parent: int) -> Callable[[], None]:
    """A Popen preexec_fn: SIGTERM this child when `parent` (the caller's pid) dies."""

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took hold
            os._exit(1)

    return preexec
