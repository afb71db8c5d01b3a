"""rendezvous.choose is the highest weight() by definition: the faster spelling must agree."""

from __future__ import annotations

import random

from skydns.rendezvous import choose, weight


def test_choose_is_the_highest_weight_first_on_tie():
    rng = random.Random(5)
    for _ in range(500):
        count = rng.randrange(1, 9)
        candidates = [f"10.{rng.randrange(4)}.0.{rng.randrange(256)}" for _ in range(count)]
        key = f"192.0.2.{rng.randrange(256)}"
        weights = [weight(key, c) for c in candidates]
        assert choose(key, candidates) == weights.index(max(weights))
    assert choose("k", []) == 0
    assert choose("k", ["a", "a"]) == 0
