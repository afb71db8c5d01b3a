"""The rise/fall filter, fed PASS/FAIL sequences; no network, no etcd."""

import pytest

from scanner.damping import DOWN, UP, Damper

P, F = True, False


def run(damper: Damper, results) -> list[str | None]:
    return [damper.feed(ok) for ok in results]


@pytest.mark.parametrize(
    ("start", "rise", "fall", "results", "flips", "end"),
    [
        # From UP: fall failures in a row flip it, fewer do not.
        (UP, 2, 3, [F, F, F], [None, None, DOWN], DOWN),
        (UP, 2, 3, [F, F], [None, None], UP),
        (UP, 2, 3, [F, F, P, F, F], [None] * 5, UP),  # a success restarts the count
        (UP, 2, 3, [F, F, P, F, F, F], [None] * 5 + [DOWN], DOWN),
        # From DOWN: rise successes in a row.
        (DOWN, 2, 3, [P, P], [None, UP], UP),
        (DOWN, 2, 3, [P, F, P], [None, None, None], DOWN),
        (DOWN, 3, 1, [P, P, F, P, P, P], [None, None, None, None, None, UP], UP),
        # rise = fall = 1: every change flips at once.
        (UP, 1, 1, [F, P, F], [DOWN, UP, DOWN], DOWN),
        # Unknown: the first verdict also needs rise or fall in a row.
        (None, 2, 3, [P, P], [None, UP], UP),
        (None, 2, 3, [F, F, F], [None, None, DOWN], DOWN),
        (None, 2, 3, [P, F, P, F], [None] * 4, None),
        # Same status again is no flip (nothing to write).
        (UP, 2, 3, [P, P, P, P], [None] * 4, UP),
        (DOWN, 2, 3, [F] * 10, [None] * 10, DOWN),
    ],
)
def test_sequences(start, rise, fall, results, flips, end):
    damper = Damper(rise, fall, start)
    assert run(damper, results) == flips
    assert damper.status == end


def test_flapping_backend_never_flips():
    damper = Damper(rise=2, fall=2, status=UP)
    assert run(damper, [F, P] * 50) == [None] * 100
    assert damper.status == UP


def test_down_after_exactly_fall_and_up_after_exactly_rise():
    for rise in range(1, 5):
        for fall in range(1, 5):
            damper = Damper(rise, fall, UP)
            flips = run(damper, [F] * fall + [P] * rise)
            assert flips.index(DOWN) == fall - 1
            assert flips.index(UP) == fall + rise - 1


def test_counters_stay_bounded():
    damper = Damper(2, 3, UP)
    run(damper, [P] * 10_000)
    assert damper.successes == 2 and damper.failures == 0


def test_reset_adopts_status_and_restarts_counting():
    damper = Damper(2, 3, UP)
    run(damper, [F, F])
    damper.reset(DOWN)
    assert (damper.status, damper.failures, damper.successes) == (DOWN, 0, 0)
    assert run(damper, [P, P]) == [None, UP]


@pytest.mark.parametrize("args", [(0, 1), (1, 0), (1, 1, "up"), (1, 1, "MAYBE")])
def test_bad_arguments(args):
    with pytest.raises(ValueError):
        Damper(*args)
