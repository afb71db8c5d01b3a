"""RecordIndex: every record below /skydns as a tree of reversed labels, for subtree lookups.

A name answers with every record at or below it (the SkyDNS rule), and `*` matches any one label
both in stored keys and in questions, so the natural shape is a label tree whose nodes count the
records beneath them: existence checks are O(depth) and empty branches are pruned on delete.
"""

from __future__ import annotations

from skydns.keys import Path
from skydns.records import Record


class _Node:
    __slots__ = ("children", "record", "count")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.record: Record | None = None
        self.count = 0  # records in this subtree, this node included


class RecordIndex:
    def __init__(self) -> None:
        self._root = _Node()
        self._by_key: dict[str, Record] = {}
        self.wildcards = 0  # stored keys with a `*` label: while any exist, lookups must try them

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: str) -> Record | None:
        return self._by_key.get(key)

    def records(self):
        return self._by_key.values()

    def clear(self) -> None:
        self.__init__()

    def put(self, record: Record) -> Record | None:
        """Insert or replace the record at its key; returns the record it replaced."""
        old = self._by_key.get(record.key)
        if old is not None and old.path != record.path:  # same key, other path: cannot happen today
            self.delete(record.key)
            old = None
        self._by_key[record.key] = record
        node = self._root
        if old is None:
            node.count += 1
        for label in record.path:
            child = node.children.get(label)
            if child is None:
                child = node.children[label] = _Node()
            node = child
            if old is None:
                node.count += 1
        node.record = record
        if old is None and "*" in record.path:
            self.wildcards += 1
        return old

    def delete(self, key: str) -> Record | None:
        record = self._by_key.pop(key, None)
        if record is None:
            return None
        trail = [self._root]
        for label in record.path:
            trail.append(trail[-1].children[label])
        trail[-1].record = None
        for node in trail:
            node.count -= 1
        for depth in range(len(record.path), 0, -1):  # prune branches that hold nothing now
            if trail[depth].count == 0:
                del trail[depth - 1].children[record.path[depth - 1]]
            else:
                break
        if "*" in record.path:
            self.wildcards -= 1
        return record

    def _match(self, path: Path) -> list[_Node]:
        """Nodes whose path matches `path` label by label (`*` on either side matches any label)."""
        nodes = [self._root]
        for label in path:
            nxt = []
            for node in nodes:
                children = node.children
                if label == "*":
                    nxt.extend(children.values())
                    continue
                child = children.get(label)
                if child is not None:
                    nxt.append(child)
                if self.wildcards:
                    wild = children.get("*")
                    if wild is not None:
                        nxt.append(wild)
            if not nxt:
                return nxt
            nodes = nxt
        return nodes

    def exists(self, path: Path) -> bool:
        return any(node.count for node in self._match(path))

    def at(self, path: Path) -> list[Record]:
        """Records stored exactly at `path` (wildcards applied), sorted by key."""
        found = [node.record for node in self._match(path) if node.record is not None]
        found.sort(key=_by_key)
        return found

    def below(self, path: Path) -> list[Record]:
        """Records at or below `path`, sorted by key so every worker answers alike."""
        found: list[Record] = []
        stack = self._match(path)
        while stack:
            node = stack.pop()
            if node.record is not None:
                found.append(node.record)
            stack.extend(node.children.values())
        found.sort(key=_by_key)
        return found


def _by_key(record: Record) -> str:
    return record.key
