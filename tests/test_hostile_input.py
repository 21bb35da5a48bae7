"""Hostile and broken input, one table: each is refused plainly, with no submit and no credit.

Every row runs through the real bot (tests/harness.py). Most rows are refusals: the private
answer (or, for a mention, the reply) names the problem, the provider sees no request and the
ledger stays empty. Two rows are about the provider's result link leading to a private
address: the job was already paid, so it ends `undeliverable`, refunded, with the reason in its
status message. One row is the prompt-injection case: accepted, but nothing it says can ping.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest
from PIL import Image

from storage.jobs import Job
from tests.fakes.discord import FakeMessage
from tests.fakes.media import make_jpeg, make_png
from tests.harness import Harness, harness
from tests.test_e2e import QUESTION, make_it
from tests.util import eventually, reason

MB = 1024 * 1024
FINAL = ("delivered", "failed", "refused", "undeliverable", "rejected")
# Discord's attachment hosts, resolved to loopback for the rows that need it (a poisoned DNS).
DISCORD_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")

Options = Callable[[Harness], dict[str, Any]]
Attachment = Callable[[Harness], dict[str, Any]]


# --------------------------------------------------------------------------- hostile files


def _corrupt_png() -> bytes:
    """A PNG whose image data was damaged after its CRC was computed."""
    data = bytearray(make_png(320, 240))
    at = data.index(b"IDAT") + 8
    data[at] ^= 0xFF
    return bytes(data)


def _bomb_png() -> bytes:
    """8000×8000 pixels (64 MP, above the 40 MP cap) in a few kilobytes."""
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _encoded(image_format: str) -> bytes:
    """A 320×240 picture in a format the bot does not send (TIFF, ICO...)."""
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (80, 90, 200)).save(buffer, image_format)
    return buffer.getvalue()


def _huge_png_body() -> bytes:
    """26 MB that starts like a PNG (the attachment metadata will lie about its size)."""
    return b"\x89PNG\r\n\x1a\n" + bytes(26 * MB)


# --------------------------------------------------------------------------- attachment builders


def file(name: str, data: bytes | Callable[[], bytes], ctype: str | None) -> Attachment:
    """A file on the fake CDN."""
    return lambda h: h.attachment(name, data() if callable(data) else data, ctype)


def picture(h: Harness) -> dict[str, Any]:
    """A good 320×240 PNG on the fake CDN."""
    return h.attachment("cat.png", make_png(320, 240), "image/png")


def declared(size: int) -> Attachment:
    """A good picture whose metadata claims `size` bytes."""
    return lambda h: {**picture(h), "size": size}


def lying(h: Harness) -> dict[str, Any]:
    """A 26 MB body whose metadata claims 1 KB."""
    return {**h.attachment("big.png", _huge_png_body(), "image/png"), "size": 1024}


def elsewhere(h: Harness) -> dict[str, Any]:
    """An attachment object whose links point off Discord's hosts."""
    url = "https://evil.example/cat.png"
    return {**picture(h), "url": url, "proxy_url": url}


def on_discord_host(h: Harness) -> dict[str, Any]:
    """A real picture, linked through cdn.discordapp.com (which resolves to loopback here)."""
    good = picture(h)
    url = _rehost(good["url"], "cdn.discordapp.com")
    return {**good, "url": url, "proxy_url": url}


def redirect_to(location: Callable[[Harness], str]) -> Attachment:
    """An attachment on the (trusted) fake CDN that answers 302 to `location`."""
    return lambda h: h.discord.add_redirect_attachment("cat.png", location(h), size=4096)


def _rehost(url: str, host: str) -> str:
    """The same URL on another host name (same port)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{host}:{parts.port}").geturl()


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    """One hostile input and what the bot must answer."""

    name: str
    words: str  # must appear in the answer (or, for undeliverable, in the job's reason)
    sub: str = "image"
    options: Options = field(default=lambda h: {})
    mention: Callable[[Harness], tuple[str, list[dict[str, Any]]]] | None = None
    expect: Literal["refused", "undeliverable", "delivered"] = "refused"
    settings: dict[str, Any] = field(default_factory=dict)
    zai: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[Harness], None] | None = None


def image(attachment: Attachment, **more: Any) -> Options:
    """/video image with this attachment."""
    return lambda h: {"image": attachment(h), **more}


def text(prompt: str, **more: Any) -> Options:
    """/video text with this prompt."""
    return lambda h: {"prompt": prompt, **more}


def mention_with(words: str) -> Callable[[Harness], tuple[str, list[dict[str, Any]]]]:
    """A message that mentions the bot, with `words` and one good picture."""
    return lambda h: (f"<@{h.discord.bot_user.id}> {words}", [picture(h)])


def injection(h: Harness) -> dict[str, Any]:
    """A prompt that tries to ping everyone, a role, another member, and to format."""
    role = next(iter(h.guild.roles))
    return {
        "prompt": f"@everyone @here <@&{role}> <@{h.bob.id}> **bold** `code` ||spoiler|| "
        "[click](https://evil.example) ```\n# heading\n> quote"
    }


LOOPBACK = "127.0.0.1"  # the only trusted host in most rows: the fake CDN and the fake Z.AI

CASES = [
    # --- not a picture, or a broken one
    Case(
        "text_file_named_png", "not a picture", options=image(file("cat.png", b"hi", "image/png"))
    ),
    Case(
        "text_file_with_text_type",
        "not a picture",
        options=image(file("cat.png", b"hi", "text/plain")),
    ),
    Case("html_named_jpg", "not a picture", options=image(file("a.jpg", b"<html></html>", None))),
    Case(
        "truncated_png",
        "damaged or incomplete",
        options=image(file("cut.png", make_png(320, 240)[:-40], "image/png")),
    ),
    Case(
        "corrupt_png", "damaged or incomplete", options=image(file("bad.png", _corrupt_png, None))
    ),
    Case(
        "truncated_jpeg",
        "damaged or incomplete",
        options=image(file("cut.jpg", make_jpeg(320, 240)[:300], "image/jpeg")),
    ),
    Case("zero_bytes", "empty", options=image(file("cat.png", b"", "image/png"))),
    # --- too big, wrong shape, bombs, animations
    Case("declared_over_25_mb", "the limit is 25 MB", options=image(declared(30 * MB))),
    Case("body_over_25_mb_despite_metadata", "larger than 25 MB", options=image(lying)),
    Case(
        "one_by_ten_thousand_pixels",
        "less than 4 times",
        options=image(file("line.png", make_png(1, 10000), "image/png"), model="vidu2-image"),
    ),
    Case(
        "decompression_bomb",
        "too many pixels",
        options=image(file("bomb.png", _bomb_png, "image/png")),
    ),
    Case("tiff", "TIFF file", options=image(file("a.tif", _encoded("TIFF"), "image/tiff"))),
    Case("icon", "(ICO) file", options=image(file("a.ico", _encoded("ICO"), "image/x-icon"))),
    Case(
        "frames_of_different_sizes",
        "similar resolutions",
        sub="frames",
        options=lambda h: {
            "first": picture(h),
            "last": h.attachment("big.png", make_png(640, 480), "image/png"),
            "model": "viduq1-start-end",  # the rule is Vidu's (cogvideox-3 has none)
        },
    ),
    Case(
        "reference_too_small",
        "128×128",
        sub="reference",
        options=lambda h: {"image1": h.attachment("tiny.png", make_png(100, 100), "image/png")},
    ),
    # --- prompts
    Case(
        "prompt_of_513_characters",
        "513 characters; the limit is 512",
        mention=mention_with("a" * 513),
    ),
    Case("prompt_only_whitespace", "no visible text", sub="text", options=text(" \t \n ")),
    Case(
        "prompt_only_control_characters",
        "no visible text",
        sub="text",
        options=text("\x00\x07\x1b\u200b\u202e"),
    ),
    # --- option combinations a model does not support
    Case(
        "viduq1_text_10_seconds",
        "5-second videos only",
        sub="text",
        options=text("a cat", model="viduq1-text", duration=10),
    ),
    Case(
        "viduq1_text_with_audio",
        "no `audio` option",
        sub="text",
        options=text("a cat", model="viduq1-text", audio=True),
    ),
    Case(
        "vidu2_image_with_fps",
        "no `fps` option",
        options=image(picture, model="vidu2-image", fps=60),
    ),
    Case(
        "cogvideox_frames_without_a_last_frame",
        "needs a first and a last frame",
        sub="frames",
        options=lambda h: {"first": picture(h)},
    ),
    # --- where downloads may go
    Case(
        "attachment_off_discord_hosts",
        "Links to evil.example are not accepted",
        options=image(elsewhere),
    ),
    Case(
        "loopback_cdn_when_nothing_is_trusted",
        f"Links to {LOOPBACK} are not accepted",
        options=image(picture),
        settings={"trusted_media_hosts": ""},
    ),
    Case(
        "discord_host_resolving_to_loopback",
        "private or local address",
        options=image(on_discord_host),
        settings={"trusted_media_hosts": ""},
    ),
    Case(
        "redirect_to_link_local_metadata",
        "Links to 169.254.169.254 are not accepted",
        options=image(redirect_to(lambda h: "http://169.254.169.254/latest/meta-data/")),
    ),
    Case(
        "redirect_to_discord_host_resolving_to_loopback",
        "private or local address",
        options=image(redirect_to(lambda h: on_discord_host(h)["url"])),
    ),
    Case(
        "result_link_on_a_private_host",
        "refused as unsafe",
        sub="text",
        options=text("a cat"),
        expect="undeliverable",
        zai={"media_host": "localhost"},
    ),
    Case(
        "result_link_redirecting_to_a_private_host",
        "refused as unsafe",
        sub="text",
        options=text("a cat"),
        expect="undeliverable",
        setup=lambda h: setattr(h.zai, "media_redirect", f"http://localhost:{h.zai.port}"),
    ),
    # --- accepted, but harmless
    Case("markdown_and_mention_injection", "", sub="text", options=injection, expect="delivered"),
]


@pytest.fixture
async def poisoned_dns(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Resolve Discord's attachment hosts to 127.0.0.1 in this event loop (checks and connects)."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        """The real resolver, except for Discord's attachment hosts."""
        return await real("127.0.0.1" if host in DISCORD_HOSTS else host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    yield


@pytest.fixture
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot with the row's settings and fake Z.AI options."""
    case: Case = request.param
    async with harness(tmp_path, zai=case.zai, **case.settings) as h:
        if case.setup is not None:
            case.setup(h)
        yield h


@pytest.mark.usefixtures("poisoned_dns")
@pytest.mark.parametrize(
    ("running", "case"), [(c, c) for c in CASES], ids=[c.name for c in CASES], indirect=["running"]
)
async def test_hostile_input(running: Harness, case: Case) -> None:
    h = running
    if case.expect == "refused":
        answer = await _ask_and_read_refusal(h, case)
        assert case.words in answer.content, answer.content
        assert h.zai.requests == []  # nothing reached the provider
        assert await _ledger(h) == []  # no credit moved
    elif case.expect == "undeliverable":
        await _ask(h, case)
        job = await _ended(h)
        assert job.state == "undeliverable" and job.refunded == 1, job
        assert case.words in reason(job.error_message)
        assert len(h.zai.submits) == 1 and _results(h) == []
        assert await _ledger(h) == [("reserve", -1), ("refund", 1)]
        assert [r.path for r in h.zai.request_log if r.path.endswith(".mp4")] in (
            [],  # the link itself was private: never fetched
            [f"/media/{job.task_id}.mp4"],  # one trusted hop, whose redirect was not followed
        )
        await eventually(lambda: _status_says(h, job), what="the status message to explain")
    else:
        await _ask(h, case)
        job = await _ended(h)
        assert job.state == "delivered"
        _nobody_else_pinged(h)


async def _ask(h: Harness, case: Case) -> None:
    """Send the row's request (slash command or mention)."""
    if case.mention is not None:
        content, attachments = case.mention(h)
        me = h.discord.bot_user
        sent = await h.discord.user_message(
            h.guild, h.channel, h.alice, content, attachments=attachments, mentions=[me]
        )
        first = await h.discord.wait_for_message(
            lambda m: m.author_id == me.id and m.id > sent.id, channel=h.channel
        )
        if QUESTION in first.content:  # which model: the usual one
            await make_it(h, first)
        return
    resolved = case.options(h)
    attachments = {k: v for k, v in resolved.items() if isinstance(v, dict)}
    plain = {k: v for k, v in resolved.items() if not isinstance(v, dict)}
    await h.discord.slash(
        h.guild, h.channel, h.alice, "video", subcommand=case.sub,
        options=plain, attachments=attachments,
    )  # fmt: skip


async def _ask_and_read_refusal(h: Harness, case: Case) -> FakeMessage:
    """Ask, and return the refusal: private for commands, a reply for mentions."""
    if case.mention is not None:
        await _ask(h, case)
        me = h.discord.bot_user.id
        reply = await h.discord.wait_for_message(
            lambda m: m.author_id == me and QUESTION not in m.content and "Making" not in m.content,
            channel=h.channel,
        )
        assert reply.allowed_mentions is not None and reply.allowed_mentions.get("parse") == []
        return reply
    before = set(h.discord.interactions)
    await _ask(h, case)
    [interaction] = [i for k, i in h.discord.interactions.items() if k not in before]
    answer = await interaction.wait_response(timeout=15)
    assert answer.ephemeral, answer.content
    assert h.bot_messages() == []  # nothing public
    return answer


async def _ended(h: Harness) -> Job:
    """The one job of the row, once it reached a final state."""
    assert h.resources is not None
    store = h.resources.engine.store

    async def final() -> Job | None:
        """The job, once final."""
        job = await store.get(1)
        return job if job is not None and job.state in FINAL else None

    return await eventually(final, timeout=20, what="the job to end")


async def _ledger(h: Harness) -> list[tuple[str, int]]:
    """(reason, delta) of every ledger row."""
    assert h.resources is not None
    rows = await h.resources.db.fetchall("SELECT reason, delta FROM credit_ledger ORDER BY id")
    return [(r[0], r[1]) for r in rows]


def _results(h: Harness) -> list[FakeMessage]:
    """Result messages of job 1 anywhere."""
    return [
        m for c in list(h.discord.channels) for m in h.discord.messages(c) if m.nonce == "job-1"
    ]


def _status_says(h: Harness, job: Job) -> bool:
    """The job's status message shows its error."""
    return any(
        m.nonce == "status-1" and reason(job.error_message or "?") in m.content
        for m in h.discord.messages(h.channel)
    )


def _nobody_else_pinged(h: Harness) -> None:
    """Every message the bot sent restricts mentions; only the requester is ever pinged."""
    sent = [m for m in h.discord.messages(h.channel) if m.author_id == h.discord.bot_user.id]
    assert sent, "the bot sent nothing"
    for message in sent:
        allowed = message.allowed_mentions
        assert allowed is not None and allowed.get("parse") == [], (message.content, allowed)
        assert {int(u) for u in allowed.get("users", [])} <= {h.alice.id}
        assert {u.id for u in message.mentions} <= {h.alice.id}
        assert "@everyone" not in message.content and "@here" not in message.content
