"""Progress figures: the finish estimate and the throttle on status edits."""

from __future__ import annotations

import pytest

from bot.providers.progress import ProgressThrottle, remaining_seconds


@pytest.mark.parametrize(
    ("elapsed", "progress", "left"),
    [
        (30.0, 50, 30.0),
        (10.0, 20, 40.0),
        (30.0, 100, 0.0),
        (30.0, 3, None),  # too early to say
        (30.0, None, None),  # provider reports nothing (Z.AI)
        (0.0, 50, None),
    ],
)
def test_remaining_seconds(elapsed: float, progress: int | None, left: float | None) -> None:
    assert remaining_seconds(elapsed, progress) == left


def test_throttle_edits_on_big_steps_and_spaced_in_time() -> None:
    throttle = ProgressThrottle(step=10, min_interval=5.0)
    assert throttle.due(0, now=0.0)  # the first figure is shown
    assert not throttle.due(0, now=1.0)  # unchanged
    assert not throttle.due(8, now=10.0)  # moved too little
    assert not throttle.due(20, now=3.0)  # moved enough, but too soon
    assert throttle.due(20, now=6.0)
    assert not throttle.due(None, now=60.0)
    assert throttle.due(100, now=6.5)  # done is always shown
    assert (throttle.shown, throttle.shown_at) == (100, 6.5)
