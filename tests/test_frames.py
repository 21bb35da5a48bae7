"""Extend's last frame: found by seeking to the last keyframe, not by decoding every frame."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.errors import InputError
from bot.frames import last_frame, last_frame_png
from tests.fakes.media import make_mp4


def decode_all_last(path: Path) -> Image.Image:
    """The last frame the slow way, for comparison."""
    with av.open(str(path)) as container:
        *_, last = container.decode(container.streams.video[0])
    return last.to_image()


def test_last_frame_seeks_instead_of_decoding_everything(tmp_path: Path) -> None:
    path = tmp_path / "long.mp4"
    path.write_bytes(make_mp4(seconds=20, fps=10))  # 200 frames
    frame, decoded = last_frame(path)
    assert decoded < 200 / 4
    assert frame.to_image().tobytes() == decode_all_last(path).tobytes()
    png = Image.open(io.BytesIO(last_frame_png(path)))
    assert png.format == "PNG" and png.size == (64, 48)


def test_short_video_still_gives_its_last_frame(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    path.write_bytes(make_mp4(seconds=0.1, fps=10))  # one frame
    frame, decoded = last_frame(path)
    assert decoded == 1 and frame.to_image().size == (64, 48)


def test_unreadable_video_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"not a video at all")
    with pytest.raises(InputError):
        last_frame_png(path)
