"""End to end through the fake Discord: every mode of every gateway model (issue 13).

The real bot (cogs, engine, database) with the New-API gateway fake and the GeekAI fake
configured beside the fake Z.AI. Both gateway fakes take pictures by URL only and here fetch and
decode every link (`fetch_pictures=True`): the pictures the bot published on its own status
message must really arrive.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.models import Mode
from bot.providers import ProviderName
from bot.providers.catalog import CATALOG
from tests.fakes.discord import FakeInteraction, FakeMessage
from tests.fakes.geekai import FakeGeekai
from tests.fakes.media import make_mp4, make_png
from tests.fakes.newapi import FakeNewApi
from tests.fakes.reseller import FakeReseller
from tests.fakes.taskapi import TaskApiFake
from tests.harness import Harness, harness
from tests.test_discord_faults import ended
from tests.util import eventually

LABELS = {ProviderName.GATEWAY: "the video gateway", ProviderName.GEEKAI: "GeekAI"}
PICTURES = {Mode.TEXT: (), Mode.IMAGE: ("image",), Mode.FRAMES: ("first", "last")}
PICTURES[Mode.REFERENCE] = ("image1", "image2")
PROMPTS = {Mode.REFERENCE: "@Image1 meets @Image2 on a beach"}

# Every (API, model, mode) the catalog offers through a gateway: the table is the test list.
CASES = [
    pytest.param(api, rules.name, mode, id=f"{api.value}-{rules.name}-{mode.value}")
    for (api, _), rules in CATALOG.items()
    if api is not ProviderName.ZAI
    for mode in sorted(rules.modes)
]


@dataclass
class Gateways:
    """The running bot and the two gateway fakes."""

    h: Harness
    newapi: FakeNewApi
    geekai: FakeGeekai

    def fake(self, api: ProviderName) -> TaskApiFake:
        """The fake that serves an API."""
        return self.newapi if api is ProviderName.GATEWAY else self.geekai


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateways]:
    """Both gateways configured (keys set), fallback off, Z.AI as always."""
    async with (
        FakeNewApi(fetch_pictures=True) as newapi,
        FakeGeekai(fetch_pictures=True) as geekai,
        harness(
            tmp_path,
            gateway_base_url=newapi.base_url,
            gateway_api_key=newapi.api_key,
            geekai_base_url=geekai.base_url,
            geekai_api_key=geekai.api_key,
        ) as h,
    ):
        yield Gateways(h, newapi, geekai)  # type: ignore[arg-type]


def png(h: Harness, name: str = "cat.png") -> dict[str, Any]:
    """A real PNG on the fake Discord CDN."""
    return h.attachment(name, make_png(320, 240), "image/png")


async def ask(
    h: Harness, model: str, mode: Mode, prompt: str | None = None, **options: Any
) -> FakeInteraction:
    """/video <mode> with the model, a prompt and the mode's pictures."""
    values: dict[str, Any] = {"model": model, **options}
    values["prompt"] = prompt or PROMPTS.get(mode, "a red fox running through snow")
    attachments = {name: png(h, f"{name}.png") for name in PICTURES[mode]}
    return await h.discord.slash(
        h.guild,
        h.channel,
        h.alice,
        "video",
        subcommand=mode.value,
        options=values,
        attachments=attachments,
    )


def made_by(result: FakeMessage) -> str:
    """The result embed's provider field."""
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    return fields["Made by"]


@pytest.mark.parametrize(("api", "model", "mode"), CASES)
async def test_every_gateway_model_and_mode_delivers(
    gw: Gateways, api: ProviderName, model: str, mode: Mode
) -> None:
    h, fake = gw.h, gw.fake(api)
    await ask(h, model, mode)
    result = await h.result_for(h.alice)
    assert [int(u) for u in result.allowed_mentions.get("users", [])] == [h.alice.id]
    assert result.content.startswith(f"<@{h.alice.id}> your video is ready")
    assert result.attachments[0][1] == make_mp4()  # what the gateway served, byte for byte
    assert made_by(result) == LABELS[api]
    [body] = fake.submits
    assert body["model"] == model and h.zai.submits == []
    assert "data:" not in json.dumps(body)  # URL-only APIs never get inline pictures
    # Each picture went as an expiring Discord link and the gateway could fetch and decode it.
    links = [url for url, _, _ in fake.fetched]
    assert len(links) == len(PICTURES[mode])
    assert all(url.startswith(h.discord.base_url) and "ex=" in url for url in links)


async def test_pictures_ride_on_the_status_message(gw: Gateways) -> None:
    h = gw.h
    await ask(h, "viduq3p-720p", Mode.FRAMES)
    result = await h.result_for(h.alice)
    status = next(m for m in h.bot_messages() if "video #" in m.content and m.id != result.id)
    assert [name for name, _ in status.attachments] == ["picture-1.png", "picture-2.png"]
    # The normalised copies are what was published (a PNG re-saved without metadata).
    assert all(data[:8] == b"\x89PNG\r\n\x1a\n" for _, data in status.attachments)


async def test_gateway_options_reach_the_body(gw: Gateways) -> None:
    h = gw.h
    await ask(h, "viduq3t-1080p", Mode.TEXT, duration=12, aspect_ratio="9:16")
    await h.result_for(h.alice)
    [body] = gw.newapi.submits
    assert body["duration"] == 12 and body["aspect_ratio"] == "9:16"
    await ask(h, "cogvideox-flash", Mode.TEXT, fps=24, quality="quality", size="720x480")
    await h.result_for(h.alice, after=0)
    await eventually(lambda: gw.geekai.submits, what="GeekAI got the job")
    [cog] = gw.geekai.submits
    assert (cog["fps"], cog["quality"], cog["size"]) == (24, "quality", "720x480")


REFUSED = [
    ("viduq3p-720p", Mode.TEXT, {"duration": 5, "fps": 60}, "has no `fps` option"),
    ("viduq3p-720p", Mode.REFERENCE, {}, "does not do reference mode"),
    ("viduq3p-mix-720p", Mode.TEXT, {}, "does not do text mode"),
    ("cogvideox-flash", Mode.TEXT, {"duration": 7}, "cogvideox-flash supports duration"),
    ("cogvideox", Mode.TEXT, {"style": "anime"}, "has no `style` option"),
]


@pytest.mark.parametrize(("model", "mode", "options", "says"), REFUSED)
async def test_gateway_rules_are_checked_before_anything_is_spent(
    gw: Gateways, model: str, mode: Mode, options: dict[str, Any], says: str
) -> None:
    h = gw.h
    interaction = await ask(h, model, mode, **options)
    answer = await interaction.wait_response()
    assert answer.ephemeral and says in answer.content, answer.content
    assert gw.newapi.submits == gw.geekai.submits == h.zai.submits == []
    assert h.discord.cdn_downloads == []  # not even the pictures were downloaded
    assert gw.newapi.fetched == gw.geekai.fetched == []


async def test_an_unconfigured_gateway_model_is_refused_by_name(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:  # no gateway key: only Z.AI's models
        interaction = await ask(h, "viduq3p-720p", Mode.TEXT)
        answer = await interaction.wait_response()
        assert "Unknown model `viduq3p-720p`" in answer.content
        assert "cogvideox-3" in answer.content and "viduq3" not in answer.content.split(":")[-1]
        video = h.bot.get_cog("Video") if h.bot else None
        assert video is not None
        offered = [c.value for c in await video._text_models(None, "")]  # type: ignore[attr-defined]
        assert "cogvideox-3" in offered and not any("viduq3" in m for m in offered)


async def test_the_commands_offer_the_configured_gateways_models(gw: Gateways) -> None:
    video = gw.h.bot.get_cog("Video") if gw.h.bot else None
    assert video is not None
    text = [c.value for c in await video._text_models(None, "")]  # type: ignore[attr-defined]
    reference = [c.value for c in await video._reference_models(None, "mix")]  # type: ignore[attr-defined]
    assert {"cogvideox-3", "viduq3p-720p", "cogvideox-flash", "cogvideox-2"} <= set(text)
    assert "viduq3p-mix-720p" not in text and reference == ["viduq3p-mix-720p"]


async def test_jobs_and_details_show_the_provider(gw: Gateways) -> None:
    h = gw.h
    await ask(h, "cogvideox", Mode.TEXT)
    result = await h.result_for(h.alice)
    jobs = await h.discord.slash(h.guild, h.channel, h.alice, "jobs")
    assert "cogvideox via GeekAI" in (await jobs.wait_response()).content
    details = await h.discord.click(h.guild, h.channel, h.alice, result, "video:details:1")
    assert "via GeekAI" in (await details.wait_response()).content


async def test_reseller_cogvideox_2_goes_inline_through_the_zai_format(tmp_path: Path) -> None:
    """ZAI_MODELS lists cogvideox-2: the reseller wins over GeekAI (first configured)."""
    async with (
        FakeGeekai() as geekai,
        harness(
            tmp_path,
            zai_fake=FakeReseller,
            zai_models="cogvideox-3,cogvideox-2",
            geekai_base_url=geekai.base_url,
            geekai_api_key=geekai.api_key,
        ) as h,
    ):
        await ask(h, "cogvideox-2", Mode.IMAGE, prompt=None)
        result = await h.result_for(h.alice)
        assert made_by(result) == "Z.AI"
        [body] = h.zai.submits
        assert body["model"] == "cogvideox-2" and body["image_url"].startswith("data:image/")
        assert geekai.submits == []


async def test_the_status_message_shows_the_gateways_progress(gw: Gateways) -> None:
    h = gw.h
    gw.newapi.hold_all = True  # the task stays running, at the progress the fake reports
    await ask(h, "viduq3p-540p", Mode.TEXT)
    status = await eventually(
        lambda: next((m for m in h.bot_messages() if "% done" in m.content), None),
        what="the status edit with the progress",
    )
    assert "0% done" in status.content and "expected" in status.content
    [task_id] = gw.newapi.tasks
    gw.newapi.finish(task_id)
    await h.result_for(h.alice)


# --- issue 12: a private request's pictures are published in the requester's DMs --------


async def test_a_private_request_to_a_link_only_gateway_publishes_its_pictures_in_dms(
    gw: Gateways,
) -> None:
    h = gw.h
    await ask(gw.h, "viduq3p-720p", Mode.FRAMES, private=True)
    job = await ended(h, 1)
    assert job.state == "delivered", job
    links = [url for url, _, _ in gw.newapi.fetched]
    assert len(links) == 2  # the gateway fetched both pictures from the DM message's links
    dms = [c for c in h.discord.channels.values() if c.is_dm and c.recipient is h.alice]
    names = [name for c in dms for m in h.discord.messages(c) for name, _ in m.attachments]
    assert {"picture-1.png", "picture-2.png", "video-1.mp4"} <= set(names)
    assert not [m for m in h.bot_messages() if not m.ephemeral]  # nothing in the channel
