"""The converge planner of the Kubernetes sync: sources/planner.py bound to its owner.

Kept as a module of its own for the callers and tests that import it from here.
"""

from __future__ import annotations

from sources.kubernetes import OWNER
from sources.planner import MAX_OPS, SourcePlanner


class SyncPlanner(SourcePlanner):
    def __init__(self, layout, snap, max_ops: int = MAX_OPS, holders=None):
        super().__init__(layout, snap, OWNER, max_ops, holders)


__all__ = ["MAX_OPS", "OWNER", "SyncPlanner"]
