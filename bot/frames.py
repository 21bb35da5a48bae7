"""Still frames out of videos (for Extend: the last frame starts the next video)."""

from __future__ import annotations

import io
from pathlib import Path

import av

from bot.errors import InputError


def last_frame_png(path: Path) -> bytes:
    """The video's last frame as PNG, decoding frame by frame (never the whole video at once)."""
    last = None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                last = frame
    except (av.FFmpegError, IndexError) as exc:
        raise InputError("That video could not be read, so it cannot be extended.") from exc
    if last is None:
        raise InputError("That video has no frames, so it cannot be extended.")
    out = io.BytesIO()
    last.to_image().save(out, format="PNG")
    return out.getvalue()
