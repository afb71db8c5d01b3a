"""What a record source wants the zone to hold: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Want:
    """One record a source wants: at `name`, type, value (an IP or an absolute name), port;
    `ttl` 0 leaves the server's default, `ptr` also writes the address' PTR to `name`."""

    name: str
    rtype: str
    value: str
    port: int = 0
    ttl: int = 0
    ptr: bool = False

    @property
    def holds_address(self) -> bool:
        return self.rtype in ("A", "AAAA") or (self.rtype == "SRV"
                                               and not self.value.endswith("."))
