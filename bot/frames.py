"""Still frames out of videos (for Extend: the last frame starts the next video)."""

from __future__ import annotations

import io
from pathlib import Path

import av

from bot.errors import InputError


def last_frame_png(path: Path) -> bytes:
    """The video's last frame as PNG (seeking to the last keyframe, not decoding them all)."""
    frame, _ = last_frame(path)
    out = io.BytesIO()
    frame.to_image().save(out, format="PNG")
    return out.getvalue()


def last_frame(path: Path) -> tuple[av.VideoFrame, int]:
    """The last frame and how many frames were decoded to reach it."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            end = _end_pts(stream)
            if end is not None:  # to the keyframe before the end, then decode the tail
                container.seek(end, stream=stream, backward=True, any_frame=False)
            found = _decode_to_end(container, stream)
            if found[0] is None and end is not None:  # the seek landed past every frame
                container.seek(0, stream=stream)
                found = _decode_to_end(container, stream)
    except (av.FFmpegError, IndexError) as exc:
        raise InputError("extend.unreadable") from exc
    if found[0] is None:
        raise InputError("extend.no_frames")
    return found  # type: ignore[return-value]


def _end_pts(stream: av.video.stream.VideoStream) -> int | None:
    """The stream's end as a timestamp in its time base, if the file says."""
    if stream.duration is None:
        return None
    return (stream.start_time or 0) + stream.duration


def _decode_to_end(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[av.VideoFrame | None, int]:
    """Decode from the current position to the end; the last frame and the count."""
    last, count = None, 0
    for frame in container.decode(stream):
        last, count = frame, count + 1
    return last, count
