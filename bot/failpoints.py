"""Named failpoints: `VIDEO_BOT_CRASH_AT=name` makes the process SIGKILL itself at that point.

The crash-safety tests run the real bot as a subprocess and kill it at each step of a job's life;
unset (always, in production) a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset(
    {
        "after_accept",  # credit reserved and job queued, nothing sent
        "before_submit",  # job marked submitting, request not sent
        "after_submit",  # provider accepted the task, its id not stored yet
        "after_poll",  # a poll answered PROCESSING and was recorded
        "after_succeeded",  # the provider finished, nothing downloaded
        "after_download",  # the video is on disk, nothing uploaded
        "after_upload",  # the result message exists, not marked delivered
    }
)

_armed = os.environ.get("VIDEO_BOT_CRASH_AT", "")


def failpoint(name: str) -> None:
    """Die here, like kill -9 would, if this failpoint is armed."""
    if name == _armed:
        os.kill(os.getpid(), signal.SIGKILL)
