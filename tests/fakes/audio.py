"""Small real audio files for tests, encoded with PyAV: ogg/opus voice messages, mp3, m4a, wav."""

from __future__ import annotations

import functools
import math
import struct
from io import BytesIO

import av

# (container format, codec, sample format, sample rate) per kind of file members send.
KINDS: dict[str, tuple[str, str, str, int]] = {
    "ogg": ("ogg", "libopus", "s16", 48_000),  # what Discord voice messages are
    "mp3": ("mp3", "libmp3lame", "s16p", 44_100),
    "m4a": ("ipod", "aac", "fltp", 44_100),
    "wav": ("wav", "pcm_s16le", "s16", 44_100),
    "webm": ("webm", "libopus", "s16", 48_000),
    "mkv": ("matroska", "libopus", "s16", 48_000),
    "flac": ("flac", "flac", "s16", 44_100),
    "aac": ("adts", "aac", "fltp", 44_100),
}
_FRAME = 960  # 20 ms at 48 kHz, one Opus frame


def _tone(samples: int, rate: int, start: int) -> bytes:
    """16-bit mono samples of a 440 Hz sine wave starting at sample `start`."""
    values = (int(8000 * math.sin(2 * math.pi * 440 * (start + i) / rate)) for i in range(samples))
    return struct.pack(f"<{samples}h", *values)


def _frame(samples: int, rate: int, start: int) -> av.AudioFrame:
    """One s16 mono frame of tone."""
    frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
    frame.sample_rate = rate
    frame.pts = start
    frame.planes[0].update(_tone(samples, rate, start))
    return frame


@functools.lru_cache(maxsize=16)
def make_audio(seconds: float = 2.0, kind: str = "ogg") -> bytes:
    """A real `kind` file of `seconds` of 440 Hz tone (ogg is an Opus voice message)."""
    container_format, codec, sample_format, rate = KINDS[kind]
    total = round(seconds * rate)
    buf = BytesIO()
    with av.open(buf, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        for start in range(0, total, _FRAME):
            frame = _frame(min(_FRAME, total - start), rate, start)
            for out in resampler.resample(frame):
                container.mux(stream.encode(out))
        for out in resampler.resample(None):
            container.mux(stream.encode(out))
        container.mux(stream.encode(None))
    return buf.getvalue()


def understate_mkv_duration(data: bytes, seconds: float) -> bytes:
    """A Matroska file whose Duration element claims `seconds` (a lying header)."""
    marker = b"\x44\x89\x88"  # Duration element id, size 8: a big-endian double in ms
    at = data.find(marker)
    if at < 0:
        raise ValueError("no 8-byte Duration element found")
    value = struct.pack(">d", seconds * 1000.0)
    return data[: at + 3] + value + data[at + 11 :]
