"""RecordIndex: every record below /skydns as a tree of reversed labels, for subtree lookups.

A name answers with every record at or below it (the SkyDNS rule), and `*` matches any one label
both in stored keys and in questions, so the natural shape is a label tree whose nodes count the
records beneath them: existence checks are O(depth) and empty branches are pruned on delete.
The tree is the only copy (no key -> record dict beside it): at a million records every object
per record counts, and a key's path leads to its node anyway.
"""

from __future__ import annotations

from operator import attrgetter

from skydns.keys import Path, key_to_path
from skydns.records import Record


class _Node:
    __slots__ = ("children", "record", "count", "memo")

    def __init__(self) -> None:
        self.children: dict[str, _Node] | None = None  # None until a child exists: most are leaves
        self.record: Record | None = None
        self.count = 0  # records in this subtree, this node included
        # What the zone transfer served at this name (transfer.py owns it): kept on the node
        # rather than in a dict beside the tree, as a million names would double that cost.
        self.memo = None


class RecordIndex:
    def __init__(self) -> None:
        self._root = _Node()
        self.wildcards = 0  # stored keys with a `*` label: while any exist, lookups must try them

    def __len__(self) -> int:
        return self._root.count

    def _node(self, path: Path) -> _Node | None:
        node = self._root
        for label in path:
            if node.children is None:
                return None
            node = node.children.get(label)
            if node is None:
                return None
        return node

    def node(self, path: Path) -> _Node | None:
        """The tree node at `path` (no wildcard applied), for readers that walk the tree
        (transfer.py): `children`, `record`, `count` (records at and below it), `memo`."""
        return self._node(path)

    def get(self, key: str) -> Record | None:
        path = key_to_path(key)
        node = self._node(path) if path is not None else None
        return None if node is None else node.record

    def records(self):
        """Every record, in no particular order."""
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.record is not None:
                yield node.record
            if node.children:
                stack.extend(node.children.values())

    def clear(self) -> None:
        self.__init__()

    def put(self, record: Record) -> Record | None:
        """Insert or replace the record at its path; returns the record it replaced."""
        trail = [self._root]
        node = self._root
        for label in record.path:
            if node.children is None:
                node.children = {}
            child = node.children.get(label)
            if child is None:
                child = node.children[label] = _Node()
            node = child
            trail.append(node)
        old = node.record
        node.record = record
        if old is None:
            for n in trail:
                n.count += 1
            if "*" in record.path:
                self.wildcards += 1
        return old

    def delete(self, key: str) -> Record | None:
        path = key_to_path(key)
        if not path:
            return None
        trail = [self._root]
        for label in path:
            children = trail[-1].children
            node = children.get(label) if children else None
            if node is None:
                return None
            trail.append(node)
        record = trail[-1].record
        if record is None:
            return None
        trail[-1].record = None
        for node in trail:
            node.count -= 1
        for depth in range(len(path), 0, -1):  # prune branches that hold nothing now
            if trail[depth].count:
                break
            del trail[depth - 1].children[path[depth - 1]]
        if "*" in path:
            self.wildcards -= 1
        return record

    def _match(self, path: Path) -> list[_Node]:
        """Nodes whose path matches `path` label by label (`*` on either side matches any label)."""
        nodes = [self._root]
        for label in path:
            nxt = []
            for node in nodes:
                children = node.children
                if not children:
                    continue
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
        """Records stored exactly at `path` (wildcards applied), in key order."""
        found = [node.record for node in self._match(path) if node.record is not None]
        found.sort(key=_order)
        return found

    def below(self, path: Path) -> list[Record]:
        """Records at or below `path`, in key order so every worker answers alike."""
        if not self.wildcards and "*" not in path:  # one node, no wildcard to try: walk to it
            node = self._root
            for label in path:  # _node, inlined: every question walks here
                children = node.children
                if children is None:
                    return []
                node = children.get(label)
                if node is None:
                    return []
            if node.children is None:  # a leaf: the commonest answer, one record
                return [node.record] if node.record is not None else []
            if node.count == 1:  # one record below (name/x): follow the only branch
                while node.record is None:  # (empty branches are pruned: one child each)
                    (node,) = node.children.values()
                return [node.record]
            children = node.children
            if node.record is None and node.count == len(children):
                # as many records as branches: when each sits at its branch's top (name/a,
                # name/b), they are the children's records, without the walk of _gather
                found = []
                for child in children.values():
                    if child.record is None:
                        break
                    found.append(child.record)
                else:
                    if len(found) == 2:
                        if found[1].path < found[0].path:
                            found.reverse()
                    elif len(found) > 2:
                        found.sort(key=_order)
                    return found
            return _gather([node])
        return _gather(self._match(path))


def below_node(node: _Node) -> list[Record]:
    """The records at and below one node, in key order."""
    if node.children is None:  # a leaf: the commonest answer, one record
        return [node.record] if node.record is not None else []
    return _gather([node])


def _gather(stack: list[_Node]) -> list[Record]:
    """The records of these nodes' subtrees, in key order."""
    found: list[Record] = []
    while stack:
        node = stack.pop()
        if node.record is not None:
            found.append(node.record)
        if node.children:
            stack.extend(node.children.values())
    if len(found) == 2:  # two records (name/a, name/b), commoner than more: no sort call
        if found[1].path < found[0].path:
            found.reverse()
    elif len(found) > 2:
        found.sort(key=_order)
    return found


_order = attrgetter("path")  # a record's sort key: its path (a C call, no Python frame)
