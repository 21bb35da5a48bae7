"""The stills and speech clients against the fake Z.AI over real HTTP, faults included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from bot.errors import InputError, ProviderError, ProviderErrorKind
from bot.i18n import render
from bot.media import download_bytes
from bot.stills import validate_still
from bot.voice import SpeechFormat, speech_from_file
from bot.zai_media import (
    ASR_MODEL,
    HOTWORDS_MAX,
    MediaAction,
    ZaiMediaClient,
    asr_fields,
    member_message,
    parse_still,
    parse_transcript,
)
from tests.fakes.audio import make_audio
from tests.fakes.zai import FakeZai, Fault

LOOPBACK = frozenset({"127.0.0.1"})


@pytest.fixture
def client(http: httpx.AsyncClient, fake_zai: FakeZai) -> ZaiMediaClient:
    """The media client pointed at the fake."""
    return ZaiMediaClient(http, fake_zai.base_url, SecretStr(fake_zai.api_key))


@pytest.fixture
async def voice_wav(tmp_path: Path) -> AsyncIterator[Path]:
    """A 2-s ogg/opus voice message converted to wav in a scratch folder."""
    src = tmp_path / "voice-message.ogg"
    src.write_bytes(make_audio(2.0, "ogg"))
    async with speech_from_file(src, tmp_path / "scratch") as audio:
        yield audio.path


# --------------------------------------------------------------------------- stills


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("glm-image", None),
        ("glm-image", "1088x1472"),
        ("glm-image", "1024x2048"),
        ("cogview-4-250304", None),
        ("cogview-4-250304", "512x768"),
    ],
)
async def test_still_round_trip(
    client: ZaiMediaClient, fake_zai: FakeZai, http: httpx.AsyncClient, model, size
) -> None:
    request = validate_still("a kitten on a sunny windowsill", model=model, size=size)
    result = await client.generate_still(request, user_id="discord-123456")
    assert fake_zai.media_api.rejected == []
    assert fake_zai.media_api.images == [request.body("discord-123456")]
    assert result.content_filter[0].role == "assistant" and result.created
    png = await download_bytes(
        http, result.url, max_bytes=5_000_000, allowed_hosts=None, trusted_hosts=LOOPBACK
    )
    with Image.open(BytesIO(png)) as image:
        assert image.format == "PNG"
        assert f"{image.width}x{image.height}" == request.size


STILL_FAULTS = [
    (Fault.http(429, "1302", "rate limit", retry_after=2), ProviderErrorKind.RETRY, 2.0),
    (Fault.http(429, "1305", "overloaded"), ProviderErrorKind.RETRY, None),
    (Fault.http(429, "1113", "balance exhausted"), ProviderErrorKind.ACCOUNT, None),
    (Fault.http(400, "1301", "content filter"), ProviderErrorKind.CONTENT_FILTER, None),
    (Fault.http(500, "500", "internal"), ProviderErrorKind.RETRY, None),
    (Fault.reset(), ProviderErrorKind.AMBIGUOUS, None),
    (Fault.accept_then_drop(), ProviderErrorKind.AMBIGUOUS, None),
]


@pytest.mark.parametrize(("fault", "kind", "retry_after"), STILL_FAULTS)
async def test_still_faults(
    client: ZaiMediaClient, fake_zai: FakeZai, fault: Fault, kind, retry_after
) -> None:
    fake_zai.media_api.script("image", fault)
    with pytest.raises(ProviderError) as caught:
        await client.generate_still(validate_still("a cat"))
    assert caught.value.kind is kind
    assert caught.value.retry_after == retry_after
    result = await client.generate_still(validate_still("a cat"))  # the next one works
    assert result.url.endswith(".png")


async def test_still_prompt_refused_by_the_filter(
    client: ZaiMediaClient, fake_zai: FakeZai
) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.generate_still(validate_still("BLOCKME please"))
    assert caught.value.kind is ProviderErrorKind.CONTENT_FILTER
    assert fake_zai.media_api.rejected == [
        ("image", "1301", "content filter: the prompt was refused")
    ]


async def test_wrong_key_is_auth_and_never_shown(
    http: httpx.AsyncClient, fake_zai: FakeZai
) -> None:
    client = ZaiMediaClient(http, fake_zai.base_url, SecretStr("wrong-key-4242"))
    with pytest.raises(ProviderError) as caught:
        await client.generate_still(validate_still("a cat"))
    assert caught.value.kind is ProviderErrorKind.AUTH
    assert "wrong-key-4242" not in str(caught.value) + caught.value.user_message


async def test_key_quoted_by_the_provider_is_scrubbed(
    client: ZaiMediaClient, fake_zai: FakeZai
) -> None:
    fake_zai.media_api.script("asr", Fault.http(400, "1214", f"bad token {fake_zai.api_key}"))
    with pytest.raises(ProviderError) as caught:
        await client.transcribe(Path(__file__), mime="audio/wav")
    assert fake_zai.api_key not in str(caught.value)
    assert "[redacted]" in caught.value.message


async def test_connection_refused_is_safe_to_retry(http: httpx.AsyncClient) -> None:
    client = ZaiMediaClient(http, "http://127.0.0.1:9/api/paas/v4", SecretStr("k" * 12))
    with pytest.raises(ProviderError) as caught:
        await client.generate_still(validate_still("a cat"))
    assert caught.value.kind is ProviderErrorKind.RETRY


@pytest.mark.parametrize(
    "answer",
    [{}, {"data": []}, {"data": [{"url": ""}]}, {"data": "x"}, {"data": [None]}],
)
def test_still_answer_without_a_link(answer: dict) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_still(answer)
    assert caught.value.kind is ProviderErrorKind.AMBIGUOUS


def test_still_answer_tolerates_odd_filters() -> None:
    result = parse_still({"data": [{"url": "u1"}, {"url": "u2"}], "content_filter": [{}, 3]})
    assert result.urls == ("u1", "u2") and result.created is None
    assert [(f.role, f.level) for f in result.content_filter] == [("", None)]


# --------------------------------------------------------------------------- speech


@pytest.mark.parametrize("fmt", list(SpeechFormat))
async def test_voice_message_to_transcript(
    client: ZaiMediaClient, fake_zai: FakeZai, tmp_path: Path, fmt: SpeechFormat
) -> None:
    src = tmp_path / "voice-message.ogg"
    src.write_bytes(make_audio(3.0, "ogg"))
    async with speech_from_file(src, tmp_path / "scratch", fmt) as audio:
        transcript = await client.transcribe(
            audio.path, mime=fmt.mime, hotwords=["CogVideoX", " Vidu ", ""], prompt="earlier"
        )
    assert transcript.text == fake_zai.media_api.transcript
    assert transcript.id and transcript.request_id
    [seen] = fake_zai.media_api.transcriptions
    assert seen.fields == {
        "model": ASR_MODEL,
        "stream": "false",
        "hotwords": '["CogVideoX", "Vidu"]',
        "prompt": "earlier",
    }
    assert (seen.filename, seen.content_type) == (f"speech.{fmt.value}", fmt.mime)
    assert seen.size == audio.size
    assert seen.seconds == pytest.approx(3.0, abs=0.1)


ASR_FAULTS = [
    (Fault.http(429, "1302", "rate limit", retry_after=1), ProviderErrorKind.RETRY),
    (Fault.http(429, "1113", "balance"), ProviderErrorKind.ACCOUNT),
    (Fault.http(400, "1301", "content filter"), ProviderErrorKind.CONTENT_FILTER),
    (Fault.http(400, "1214", "audio could not be decoded"), ProviderErrorKind.BAD_REQUEST),
    (Fault.reset(), ProviderErrorKind.AMBIGUOUS),
]


@pytest.mark.parametrize(("fault", "kind"), ASR_FAULTS)
async def test_transcription_faults(
    client: ZaiMediaClient, fake_zai: FakeZai, voice_wav: Path, fault: Fault, kind
) -> None:
    fake_zai.media_api.script("asr", fault)
    with pytest.raises(ProviderError) as caught:
        await client.transcribe(voice_wav, mime="audio/wav")
    assert caught.value.kind is kind
    assert (await client.transcribe(voice_wav, mime="audio/wav")).text


async def test_bad_audio_refused_by_the_fake(
    client: ZaiMediaClient, fake_zai: FakeZai, tmp_path: Path
) -> None:
    fake = tmp_path / "speech.wav"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    with pytest.raises(ProviderError) as caught:
        await client.transcribe(fake, mime="audio/wav")
    assert caught.value.kind is ProviderErrorKind.BAD_REQUEST
    assert fake_zai.media_api.rejected[0][:2] == ("asr", "1214")


async def test_too_many_hotwords_sends_nothing(
    client: ZaiMediaClient, fake_zai: FakeZai, voice_wav: Path
) -> None:
    before = len(fake_zai.requests)
    words = [f"word{i}" for i in range(HOTWORDS_MAX + 1)]
    with pytest.raises(InputError, match="at most 100"):
        await client.transcribe(voice_wav, mime="audio/wav", hotwords=words)
    assert len(fake_zai.requests) == before


def test_asr_fields_keep_the_latest_context() -> None:
    fields = asr_fields(["a"] * HOTWORDS_MAX, "x" * 9000 + "END")
    assert len(fields["prompt"]) == 8000 and fields["prompt"].endswith("END")
    assert "hotwords" not in asr_fields([" ", ""], None)


@pytest.mark.parametrize(
    ("answer", "text"),
    [({"text": "  hello  ", "id": "a"}, "hello"), ({"text": ""}, "")],
)
def test_transcript_answer(answer: dict, text: str) -> None:
    assert parse_transcript(answer).text == text


def test_transcript_answer_without_text() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_transcript({"id": "x"})
    assert caught.value.kind is ProviderErrorKind.AMBIGUOUS


@pytest.mark.parametrize("action", list(MediaAction))
@pytest.mark.parametrize("kind", list(ProviderErrorKind))
def test_member_messages_never_speak_of_videos(
    action: MediaAction, kind: ProviderErrorKind
) -> None:
    message = render("en-US", member_message(action, ProviderError(kind, "x", "secret detail")))
    assert "video" not in message and "secret detail" not in message
    assert ("refunded" if action is MediaAction.STILL else "nothing was charged") in message
