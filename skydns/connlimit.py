"""TCP connection caps: per client address and in all, per worker process.

A client that opens connections and never finishes a message must not take every slot (or
every file descriptor): past the caps a new connection is refused at once. Pure bookkeeping;
the transport asks `admit` when a connection arrives and calls `release` when it is gone.
"""

from __future__ import annotations


class ConnectionLimits:
    def __init__(self, total: int, per_client: int):
        self.total = total  # 0: no cap
        self.per_client = per_client
        self.open = 0
        self.by_client: dict[str, int] = {}
        self.refused = 0

    def admit(self, client: str) -> bool:
        held = self.by_client.get(client, 0)
        if (self.total and self.open >= self.total) or (
            self.per_client and held >= self.per_client
        ):
            self.refused += 1
            return False
        self.open += 1
        self.by_client[client] = held + 1
        return True

    def release(self, client: str) -> None:
        held = self.by_client.get(client, 0)
        if not held:
            return
        self.open -= 1
        if held == 1:
            del self.by_client[client]
        else:
            self.by_client[client] = held - 1
