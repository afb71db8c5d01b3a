"""The front: transports, batched UDP, the answer cache, forwarding, workers, stats (README.md)."""
