"""Using a provider's progress: predict the finish, and edit the status message sparingly."""

from __future__ import annotations

from dataclasses import dataclass

MIN_PROGRESS = 5  # below this the estimate is noise (queue time dominates)


def remaining_seconds(elapsed: float, progress: int | None) -> float | None:
    """Seconds left if progress grows linearly from submit; None when it says nothing yet."""
    if progress is None or progress < MIN_PROGRESS or elapsed <= 0:
        return None
    if progress >= 100:
        return 0.0
    return elapsed * (100 - progress) / progress


@dataclass
class ProgressThrottle:
    """Decides when a new progress figure is worth a Discord message edit.

    An edit is due when progress moved by at least `step` points and `min_interval` seconds
    passed since the last edit (Discord rate-limits message edits; a bar moving 1% at a time
    would spend them for nothing). The first figure and 100 are always shown.
    """

    step: int = 10
    min_interval: float = 5.0
    shown: int | None = None
    shown_at: float = 0.0

    def due(self, progress: int | None, now: float) -> bool:
        """True when `progress` should be shown now (then it is recorded as shown)."""
        if progress is None or progress == self.shown:
            return False
        first_or_done = self.shown is None or progress >= 100
        moved = self.shown is not None and progress - self.shown >= self.step
        if not first_or_done and not (moved and now - self.shown_at >= self.min_interval):
            return False
        self.shown, self.shown_at = progress, now
        return True
