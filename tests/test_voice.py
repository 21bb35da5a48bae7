"""Audio members send, converted for speech recognition with real PyAV files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import av
import httpx
import pytest
from aiohttp import web

from bot.errors import InputError
from bot.voice import (
    INPUT_MAX_BYTES,
    SAMPLE_RATE,
    SpeechFormat,
    check_declared,
    convert_speech,
    sniff_container,
    speech_from_file,
    speech_from_url,
)
from tests.fakes.audio import make_audio, understate_mkv_duration
from tests.fakes.media import make_mp4, make_png


def _write(folder: Path, name: str, data: bytes) -> Path:
    """`data` as folder/name."""
    path = folder / name
    path.write_bytes(data)
    return path


def _decoded_seconds(path: Path) -> tuple[float, int, int]:
    """Seconds, sample rate and channels of a file, by decoding all of it."""
    samples = rate = channels = 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples += frame.samples
            rate, channels = frame.sample_rate, len(frame.layout.channels)
    return samples / rate, rate, channels


@pytest.mark.parametrize("kind", ["ogg", "mp3", "m4a", "wav", "webm", "flac", "aac"])
@pytest.mark.parametrize("fmt", list(SpeechFormat))
def test_converts_what_members_send(tmp_path: Path, kind: str, fmt: SpeechFormat) -> None:
    src = _write(tmp_path, f"in.{kind}", make_audio(2.0, kind))
    audio = convert_speech(src, tmp_path, fmt)
    assert audio.path == tmp_path / f"speech.{fmt.value}"
    assert audio.seconds == pytest.approx(2.0, abs=0.05)  # raw AAC keeps ~2 frames of padding
    assert audio.size == audio.path.stat().st_size
    seconds, rate, channels = _decoded_seconds(audio.path)
    assert (rate, channels) == (SAMPLE_RATE, 1)
    assert seconds == pytest.approx(audio.seconds, abs=0.06)  # mp3 adds encoder delay
    with av.open(str(audio.path)) as container:
        assert container.format.name == fmt.value


def test_thirty_one_seconds_refused(tmp_path: Path) -> None:
    src = _write(tmp_path, "voice.ogg", make_audio(31.0, "ogg"))
    with pytest.raises(InputError, match="31 s long; .* at most 30 s. Record a shorter one"):
        convert_speech(src, tmp_path)
    assert not (tmp_path / "speech.wav").exists()


def test_thirty_seconds_with_encoder_padding_pass_cut_to_thirty(tmp_path: Path) -> None:
    src = _write(tmp_path, "phone.m4a", make_audio(30.0, "m4a"))  # AAC pads the end
    audio = convert_speech(src, tmp_path)
    assert audio.seconds == 30.0
    assert _decoded_seconds(audio.path)[0] == pytest.approx(30.0, abs=0.001)


def test_lying_header_cannot_pass(tmp_path: Path) -> None:
    data = understate_mkv_duration(make_audio(40.0, "mkv"), 5.0)
    src = _write(tmp_path, "liar.mkv", data)
    with av.open(str(src)) as container:
        assert container.duration / av.time_base == pytest.approx(5.0)  # the header lies
    with pytest.raises(InputError, match="longer than 30 s"):
        convert_speech(src, tmp_path)
    assert list(tmp_path.iterdir()) == [src]


NOT_AUDIO = [
    ("notes.txt", b"just some text, not a recording\n" * 20, "not audio the bot can read"),
    ("picture.png", make_png(32, 32), "not audio the bot can read"),
    ("playlist.m3u8", b"#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/x.ts\n", "not audio"),
    ("silent.mp4", make_mp4(), "has no sound track"),
    ("broken.ogg", b"OggS" + b"\x00" * 200, "could not be decoded"),
    ("empty.wav", b"", "not audio the bot can read"),
]


@pytest.mark.parametrize(("name", "data", "reason"), NOT_AUDIO)
def test_non_audio_refused(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    src = _write(tmp_path, name, data)
    with pytest.raises(InputError, match=reason) as caught:
        convert_speech(src, tmp_path)
    assert "Send a voice message, mp3, m4a, wav" in caught.value.user_message or (
        "no sound" in caught.value.user_message
    )
    assert list(tmp_path.iterdir()) == [src]


def test_truncated_voice_message_keeps_what_decodes(tmp_path: Path) -> None:
    data = make_audio(3.0, "ogg")
    src = _write(tmp_path, "cut.ogg", data[: len(data) // 2])
    audio = convert_speech(src, tmp_path)  # what decodes is used, and measured
    assert 0 < audio.seconds < 3.0


def test_too_big_refused_before_decoding(tmp_path: Path) -> None:
    src = tmp_path / "huge.wav"
    with src.open("wb") as handle:
        handle.write(make_audio(1.0, "wav"))
        handle.truncate(INPUT_MAX_BYTES + 1)  # sparse: no 25 MB written
    with pytest.raises(InputError, match="25.0 MB; at most 25 MB"):
        convert_speech(src, tmp_path)


@pytest.mark.parametrize(
    ("size", "seconds", "ok"),
    [(1000, 12.5, True), (None, None, True), (1000, 30.4, True), (1000, 31.0, False)]
    + [(INPUT_MAX_BYTES + 1, 1.0, False)],
)
def test_declared_limits(size: int | None, seconds: float | None, ok: bool) -> None:
    if ok:
        check_declared(size, seconds)
    else:
        with pytest.raises(InputError):
            check_declared(size, seconds)


@pytest.mark.parametrize(
    ("kind", "demuxer"),
    [("ogg", "ogg"), ("mp3", "mp3"), ("m4a", "mov"), ("wav", "wav"), ("webm", "matroska")]
    + [("flac", "flac"), ("aac", "aac")],
)
def test_sniffed_demuxer(kind: str, demuxer: str) -> None:
    assert sniff_container(make_audio(1.0, kind)[:16]) == demuxer


async def test_scratch_folder_is_private_and_cleaned(tmp_path: Path) -> None:
    src = _write(tmp_path, "voice.ogg", make_audio(1.0, "ogg"))
    scratch = tmp_path / "data" / "scratch"
    async with speech_from_file(src, scratch) as audio:
        assert audio.path.parent.parent == scratch
        assert audio.path.parent.stat().st_mode & 0o777 == 0o700
    assert list(scratch.iterdir()) == []


# --------------------------------------------------------------------------- from a URL


@pytest.fixture
async def attachments() -> AsyncIterator[str]:
    """A loopback server for attachments: /voice.ogg, /big.ogg (declares 30 MB)."""

    async def voice(request: web.Request) -> web.Response:
        return web.Response(body=make_audio(2.0, "ogg"), content_type="audio/ogg")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 30_000_000
        await response.prepare(request)
        await response.write(b"OggS")
        return response

    app = web.Application()
    app.router.add_get("/voice.ogg", voice)
    app.router.add_get("/big.ogg", big)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_from_url(http: httpx.AsyncClient, attachments: str, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    loopback = frozenset({"127.0.0.1"})
    async with speech_from_url(
        http, f"{attachments}/voice.ogg", scratch, trusted_hosts=loopback, allowed_hosts=None
    ) as audio:
        assert audio.seconds == pytest.approx(2.0, abs=0.03)
    assert list(scratch.iterdir()) == []
    with pytest.raises(InputError, match="larger than"):
        async with speech_from_url(
            http, f"{attachments}/big.ogg", scratch, trusted_hosts=loopback, allowed_hosts=None
        ):
            pytest.fail("a 30 MB attachment was accepted")
    assert list(scratch.iterdir()) == []


async def test_from_url_refuses_foreign_hosts(http: httpx.AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not accepted"):
        async with speech_from_url(
            http, "http://127.0.0.1:9/voice.ogg", tmp_path, trusted_hosts=frozenset()
        ):
            pytest.fail("a non-Discord link was fetched")
