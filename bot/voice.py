"""Members' audio (voice messages, mp3, m4a, wav, ...) made ready for speech recognition.

Speech recognition takes wav or mp3 of at most 25 MB and 30 s (seed 003). Audio is decoded and
re-encoded with PyAV through files in a scratch folder; its length is counted from the decoded
samples, so a container header that understates the duration cannot slip a long file through,
and what is sent is our own encode, never the member's bytes.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import av
import httpx

from bot.errors import InputError
from bot.media import DISCORD_ATTACHMENT_HOSTS, download_to_file

SPEECH_MAX_SECONDS = 30.0
SPEECH_MAX_BYTES = 25_000_000  # "25 MB" read strictly (decimal), as the fakes do
INPUT_MAX_BYTES = 25_000_000  # what a member may attach: more is refused before downloading
SAMPLE_RATE = 16_000  # speech needs no more; 30 s of 16-bit mono wav is under 1 MB
_MP3_BPS = 48_000
# Seconds past the limit forgiven (and cut off): encoders pad the end, e.g. AAC by ~20 ms,
# so a 30.0 s phone recording decodes a little longer. What is sent is never over 30 s.
_GRACE = 0.5


class SpeechFormat(StrEnum):
    """What the transcription endpoint accepts."""

    WAV = "wav"
    MP3 = "mp3"

    @property
    def mime(self) -> str:
        """The multipart content type."""
        return "audio/wav" if self is SpeechFormat.WAV else "audio/mpeg"


@dataclass(frozen=True)
class SpeechAudio:
    """A converted file ready to send: path, format, measured seconds and bytes."""

    path: Path
    format: SpeechFormat
    seconds: float
    size: int


def _refuse_length(seconds: float, *, longer: bool = False) -> InputError:
    """The message for audio over the limit (`longer`: decoding found more than declared)."""
    limit = f"{SPEECH_MAX_SECONDS:.0f}"
    if longer and seconds <= SPEECH_MAX_SECONDS + _GRACE:
        return InputError("voice.longer_than", limit=limit)
    return InputError("voice.too_long", seconds=_seconds_text(seconds), limit=limit)


def _seconds_text(seconds: float) -> str:
    """31, 30.6: one decimal, none when it is zero."""
    return f"{seconds:.1f}".removesuffix(".0")


def _refuse_size(size: int, limit: int) -> InputError:
    """The message for audio over a byte limit."""
    return InputError("voice.too_big", size=f"{size / 1e6:.1f}", limit=f"{limit / 1e6:.0f}")


def check_declared(size: int | None, seconds: float | None) -> None:
    """Refuse early from what Discord declares (attachment size, voice `duration_secs`).

    Only a first filter before downloading: the decoded length decides in `convert_speech`.
    """
    if size is not None and size > INPUT_MAX_BYTES:
        raise _refuse_size(size, INPUT_MAX_BYTES)
    if seconds is not None and seconds > SPEECH_MAX_SECONDS + _GRACE:
        raise _refuse_length(seconds)


def sniff_container(head: bytes) -> str | None:
    """The FFmpeg demuxer for an audio file's first bytes, or None if not a known audio type.

    Naming the demuxer keeps FFmpeg from probing member files as playlists (hls, concat),
    which would make it open other files or URLs.
    """
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith((b"ID3", b"fLaC")):
        return "mp3" if head.startswith(b"ID3") else "flac"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # also webm
    if head[4:8] == b"ftyp":
        return "mov"  # mp4, m4a, 3gp
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "aac" if head[1] & 0x06 == 0 else "mp3"  # ADTS has layer bits 00
    return None


def convert_speech(src: Path, dest_dir: Path, fmt: SpeechFormat = SpeechFormat.WAV) -> SpeechAudio:
    """Decode `src` and write 16 kHz mono `fmt` into `dest_dir`; InputError if unusable."""
    size = src.stat().st_size
    if size > INPUT_MAX_BYTES:
        raise _refuse_size(size, INPUT_MAX_BYTES)
    with src.open("rb") as handle:
        demuxer = sniff_container(handle.read(16))
    if demuxer is None:
        raise InputError("voice.not_audio")
    dest = dest_dir / f"speech.{fmt.value}"
    try:
        seconds = _transcode(src, demuxer, dest, fmt)
    except av.FFmpegError:
        dest.unlink(missing_ok=True)
        raise InputError("voice.undecodable") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return _checked_output(dest, fmt, seconds)


def _checked_output(dest: Path, fmt: SpeechFormat, seconds: float) -> SpeechAudio:
    """The result, unless it is empty or (cannot happen at 30 s of 16 kHz) too big."""
    out_size = dest.stat().st_size
    if seconds <= 0:
        dest.unlink(missing_ok=True)
        raise InputError("voice.silent")
    if out_size > SPEECH_MAX_BYTES:
        dest.unlink(missing_ok=True)
        raise _refuse_size(out_size, SPEECH_MAX_BYTES)
    return SpeechAudio(dest, fmt, seconds, out_size)


def _transcode(src: Path, demuxer: str, dest: Path, fmt: SpeechFormat) -> float:
    """Decode the first audio track into `dest`; the seconds written (counted, not read)."""
    with av.open(str(src), format=demuxer) as source:
        if not source.streams.audio:
            raise InputError("voice.no_track")
        if source.duration and source.duration / av.time_base > SPEECH_MAX_SECONDS + _GRACE:
            raise _refuse_length(source.duration / av.time_base)  # cheap refusal first
        with av.open(str(dest), "w", format=fmt.value) as target:
            stream = _output_stream(target, fmt)
            samples = _pump(source, target, stream)
    return samples / SAMPLE_RATE


def _output_stream(target: av.container.OutputContainer, fmt: SpeechFormat) -> av.AudioStream:
    """16 kHz mono PCM for wav, 48 kb/s MP3 otherwise."""
    codec = "pcm_s16le" if fmt is SpeechFormat.WAV else "libmp3lame"
    stream = target.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
    if fmt is SpeechFormat.MP3:
        stream.bit_rate = _MP3_BPS
    return stream


def _pump(
    source: av.container.InputContainer,
    target: av.container.OutputContainer,
    stream: av.AudioStream,
) -> int:
    """Decode, resample and encode frame by frame; refuse at the first sample past the grace.

    At most 30 s are written: the grace only forgives encoder padding at the end.
    """
    codec = stream.codec_context
    resampler = av.AudioResampler(format=codec.format, layout="mono", rate=SAMPLE_RATE)
    keep = int(SPEECH_MAX_SECONDS * SAMPLE_RATE)
    refuse_after = int((SPEECH_MAX_SECONDS + _GRACE) * SAMPLE_RATE)
    decoded = written = 0
    for frame in _decoded(source, resampler):
        decoded += frame.samples
        if decoded > refuse_after:
            raise _refuse_length(_declared_seconds(source), longer=True)
        if written < keep:
            out = _head(frame, keep - written)
            written += out.samples
            target.mux(stream.encode(out))
    target.mux(stream.encode(None))
    return written


def _decoded(
    source: av.container.InputContainer, resampler: av.AudioResampler
) -> Iterator[av.AudioFrame]:
    """Every frame of the first audio track, decoded and resampled, then the resampler's tail."""
    for packet in source.demux(source.streams.audio[0]):
        for frame in packet.decode():
            frame.pts = None  # some files repeat timestamps; order is all that matters here
            yield from resampler.resample(frame)
    yield from resampler.resample(None)


def _head(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    """The frame, or a copy of its first `samples` (mono: one plane, packed or planar)."""
    if frame.samples <= samples:
        return frame
    width = frame.format.bytes
    head = av.AudioFrame(format=frame.format.name, layout="mono", samples=samples)
    head.sample_rate = frame.sample_rate
    head.planes[0].update(bytes(frame.planes[0])[: samples * width])
    return head


def _declared_seconds(source: av.container.InputContainer) -> float:
    """The container's own duration claim in seconds (0 when it makes none)."""
    return (source.duration or 0) / av.time_base


# ---------------------------------------------------------------------------- scratch files


@asynccontextmanager
async def speech_from_file(
    src: Path, scratch: Path, fmt: SpeechFormat = SpeechFormat.WAV
) -> AsyncIterator[SpeechAudio]:
    """Convert a local file into a private folder under `scratch`, removed on exit."""
    async with _workdir(scratch) as work:
        yield await asyncio.to_thread(convert_speech, src, work, fmt)


@asynccontextmanager
async def speech_from_url(
    http: httpx.AsyncClient,
    url: str,
    scratch: Path,
    *,
    trusted_hosts: frozenset[str],
    allowed_hosts: frozenset[str] | None = DISCORD_ATTACHMENT_HOSTS,
    fmt: SpeechFormat = SpeechFormat.WAV,
) -> AsyncIterator[SpeechAudio]:
    """Download an attachment (guarded, size-capped) and convert it, all under `scratch`."""
    async with _workdir(scratch) as work:
        source = work / "input"
        await download_to_file(
            http,
            url,
            source,
            max_bytes=INPUT_MAX_BYTES,
            allowed_hosts=allowed_hosts,
            trusted_hosts=trusted_hosts,
        )
        yield await asyncio.to_thread(convert_speech, source, work, fmt)


@asynccontextmanager
async def _workdir(scratch: Path) -> AsyncIterator[Path]:
    """A fresh 0700 folder under `scratch` (the bot's scratch dir, not /tmp), then removed."""
    await asyncio.to_thread(scratch.mkdir, mode=0o700, parents=True, exist_ok=True)
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="voice-", dir=scratch))
    try:
        yield work
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
