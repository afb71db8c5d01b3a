"""Which scanner probes which address: sticky rendezvous hashing with a load cap. Pure.

Plain rendezvous (highest-random-weight) hashing moves the fewest addresses when scanners
come and go, but its balance is only statistical: 300 addresses on 3 scanners land 100 +- 8
each, and an unlucky set of names can be 25% off. So:

  cap = ceil(addresses / scanners)
  1. An address stays with its current scanner while that scanner is alive and under the
     cap; a scanner above the cap keeps the addresses it ranks highest.
  2. Every other address (new, orphaned, or over the cap) goes to the highest-ranked live
     scanner that is still under the cap.

Consequences, each tested in tests/test_scheduler_assign.py:
  - no scanner holds more than ceil(n/k), so none holds fewer than n - (k-1)*ceil(n/k);
  - a scanner leaving: only its own addresses move (the others are all under the new cap);
  - a scanner joining: only the addresses it takes move, ~n/(k+1) of them (each other
    scanner hands over what is above the new cap);
  - the result depends only on (addresses, scanners, current assignment): any leader
    computes the same thing from the same etcd state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from skydns.rendezvous import weight


def score(scanner: str, ip: str) -> int:
    """The rendezvous weight of (scanner, ip): skydns.rendezvous, the same on every host."""
    return weight(ip, scanner)


def ranking(ip: str, scanners: Iterable[str]) -> list[str]:
    """Scanners in order of preference for ip (ties, which need a hash collision, by name)."""
    return sorted(scanners, key=lambda s: (-score(s, ip), s))


def assign(ips: Iterable[str], scanners: Iterable[str],
           current: Mapping[str, str] | None = None) -> dict[str, str]:
    """The target owner of every ip.

    current maps ip -> the scanner it is assigned to now (entries for ips that are no longer
    monitored, or scanners that are gone, are ignored). With no live scanner the current
    owners of monitored ips are kept, since there is nowhere to move them.
    """
    ips = sorted(set(ips))
    live = sorted(set(scanners))
    current = current or {}
    if not live:
        return {ip: current[ip] for ip in ips if ip in current}
    cap = math.ceil(len(ips) / len(live))
    live_set = set(live)

    owned: dict[str, list[str]] = {}
    for ip in ips:
        owner = current.get(ip)
        if owner in live_set:
            owned.setdefault(owner, []).append(ip)

    target: dict[str, str] = {}
    load = dict.fromkeys(live, 0)
    for owner, held in owned.items():
        if len(held) > cap:
            held = sorted(held, key=lambda ip, o=owner: (-score(o, ip), ip))[:cap]
        for ip in held:
            target[ip] = owner
        load[owner] = len(held)

    for ip in ips:
        if ip in target:
            continue
        for scanner in ranking(ip, live):
            if load[scanner] < cap:
                target[ip] = scanner
                load[scanner] += 1
                break
    return target


def diff(current: Mapping[str, str], target: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(writes: ip -> new owner for what changes, deletes: assigned ips no longer wanted)."""
    writes = {ip: owner for ip, owner in target.items() if current.get(ip) != owner}
    deletes = sorted(ip for ip in current if ip not in target)
    return writes, deletes
