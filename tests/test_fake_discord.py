"""Tests of the fake Discord, driven by an unmodified discord.py bot."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeMessage, FakeUser, MiB, Perm

# a minimal bot


def payload_bytes(size: int) -> bytes:
    """Return ``size`` deterministic, non-trivial bytes."""
    pattern = bytes(range(256))
    return (pattern * (size // 256 + 1))[:size]


class GoView(discord.ui.View):
    """A single persistent-style button."""

    @discord.ui.button(label="Go", custom_id="mini:go")
    async def go(
        self, interaction: discord.Interaction, _button: discord.ui.Button[GoView]
    ) -> None:
        """Replace the message content and drop the button."""
        await interaction.response.edit_message(content="clicked", view=None)


class PromptModal(discord.ui.Modal, title="Prompt"):
    """A one-field modal."""

    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt", custom_id="mini:prompt", max_length=200
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Echo the prompt ephemerally."""
        await interaction.response.send_message(f"prompt: {self.prompt.value}", ephemeral=True)


@app_commands.command(name="ping", description="Reply at once")
async def ping(interaction: discord.Interaction) -> None:
    """Reply immediately."""
    await interaction.response.send_message("pong")


@app_commands.command(name="think", description="Defer, then follow up")
async def think(interaction: discord.Interaction) -> None:
    """Defer publicly, then send the follow-up."""
    await interaction.response.defer(thinking=True)
    await interaction.followup.send("thought about it")


@app_commands.command(name="secret", description="Ephemeral defer, then a follow-up")
async def secret(interaction: discord.Interaction) -> None:
    """Defer ephemerally; the follow-up does not ask for ephemeral."""
    await interaction.response.defer(ephemeral=True)
    await interaction.followup.send("for your eyes")


@app_commands.command(name="later", description="Defer and keep the interaction")
async def later(interaction: discord.Interaction) -> None:
    """Defer and hand the interaction to the test."""
    await interaction.response.defer()
    bot = interaction.client
    assert isinstance(bot, MiniBot)
    bot.pending.set_result(interaction)


@app_commands.command(name="upload", description="Post a file of N bytes with channel.send")
async def upload(interaction: discord.Interaction, size: app_commands.Range[int, 1]) -> None:
    """Post ``size`` bytes as a file, then report how it went."""
    await interaction.response.defer()
    channel = interaction.channel
    assert isinstance(channel, discord.TextChannel)
    try:
        await channel.send(file=discord.File(io.BytesIO(payload_bytes(size)), filename="clip.bin"))
    except discord.HTTPException as exc:
        await interaction.followup.send(f"upload failed: {exc.status} {exc.code}")
    else:
        await interaction.followup.send("uploaded")


@app_commands.command(name="buttons", description="Show a button")
async def buttons(interaction: discord.Interaction) -> None:
    """Send a message with a button."""
    await interaction.response.send_message("pick one", view=GoView())


@app_commands.command(name="ask", description="Open a modal")
async def ask(interaction: discord.Interaction) -> None:
    """Open the prompt modal."""
    await interaction.response.send_modal(PromptModal())


@app_commands.command(name="purge", description="Moderators only")
@app_commands.default_permissions(manage_guild=True)
async def purge(interaction: discord.Interaction) -> None:
    """A moderator-only command."""
    await interaction.response.send_message("purged", ephemeral=True)


@app_commands.command(name="describe", description="Read an attachment and send it back reversed")
async def describe(interaction: discord.Interaction, image: discord.Attachment) -> None:
    """Download the attachment from the CDN and reply with a file (multipart callback)."""
    data = await image.read()
    summary = f"{image.filename} {len(data)} {image.content_type} {image.width}x{image.height}"
    reversed_file = discord.File(io.BytesIO(data[::-1]), filename="reversed.bin")
    await interaction.response.send_message(summary, file=reversed_file)


@app_commands.context_menu(name="Quote")
async def quote(interaction: discord.Interaction, message: discord.Message) -> None:
    """Quote the target message."""
    await interaction.response.send_message(f"> {message.content}")


class MiniBot(commands.Bot):
    """The smallest bot exercising the fake: guild-synced commands, a view, a modal."""

    def __init__(self, guild_id: int) -> None:
        """Default intents (no privileged ones); short guild_ready_timeout keeps tests fast."""
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
        )
        self.guild_id = guild_id
        self.pending: asyncio.Future[discord.Interaction] = (
            asyncio.get_running_loop().create_future()
        )

    async def setup_hook(self) -> None:
        """Register the commands on the test guild and sync them."""
        guild = discord.Object(self.guild_id)
        for command in (ping, think, secret, later, upload, buttons, ask, purge, describe, quote):
            self.tree.add_command(command, guild=guild)
        await self.tree.sync(guild=guild)


# fixtures


@dataclass
class World:
    """The fake plus the guild, channel and people the tests use."""

    fake: FakeDiscord
    guild: FakeGuild
    alice: FakeUser
    mod: FakeUser

    @property
    def channel_id(self) -> int:
        """Return the id of #general."""
        return self.guild.channel("general").id


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """A running fake, pointed at by discord.py, with one guild and two members."""
    async with FakeDiscord() as fake:
        alice, mod = fake.add_user("alice"), fake.add_user("mod")
        guild = fake.add_guild(
            name="Test", channels=["general"], members=[alice, (mod, Perm.MANAGE_GUILD)]
        )
        with fake.patch_discord_py():
            yield World(fake, guild, alice, mod)
        assert fake.server_errors == []
        assert fake.unhandled_requests == []


@contextlib.asynccontextmanager
async def running(bot: MiniBot, fake: FakeDiscord) -> AsyncIterator[MiniBot]:
    """Log the bot in, wait until the fake saw it ready, and close it afterwards."""
    task = asyncio.create_task(bot.start(fake.token))
    ready = asyncio.create_task(fake.wait_ready(timeout=10))
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    try:
        await ready
        yield bot
    finally:
        await bot.close()
        await task


@pytest.fixture
async def bot(world: World) -> AsyncIterator[MiniBot]:
    """A connected MiniBot."""
    async with running(MiniBot(world.guild.id), world.fake) as connected:
        yield connected


# login, gateway, sync


async def test_login_ready_and_command_sync(bot: MiniBot, world: World) -> None:
    """The bot logs in, receives READY + GUILD_CREATE and syncs its guild commands once."""
    fake = world.fake
    await asyncio.wait_for(bot.wait_until_ready(), 5)
    assert bot.user is not None and bot.user.id == fake.bot_user.id
    assert bot.application_id == fake.application_id
    channel = bot.get_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)
    assert channel.guild.filesize_limit == 10 * MiB
    assert fake.sync_calls == 1
    names = {c["name"] for c in fake.commands(world.guild)}
    assert names == {c.name for c in bot.tree.get_commands(guild=discord.Object(world.guild.id))}
    assert {"ping", "upload", "buttons", "Quote"} <= names
    seen = {(r.method, r.path) for r in fake.requests}
    assert ("GET", "/users/@me") in seen and ("GET", "/oauth2/applications/@me") in seen
    assert fake.gateway.identifies[0]["intents"] == discord.Intents.default().value
    assert fake.invalid_requests == []


async def test_wrong_token_fails_login(world: World) -> None:
    """A bad token gets 401 on GET /users/@me, which discord.py turns into LoginFailure."""
    bot = MiniBot(world.guild.id)
    with pytest.raises(discord.LoginFailure):
        await bot.login("not-the-token")
    await bot.close()
    assert world.fake.error_responses[-1].status == 401


class ShardedBot(commands.AutoShardedBot):
    """An auto-sharded bot: it asks GET /gateway/bot for the URL and identifies with a shard."""

    def __init__(self) -> None:
        """Default intents, fast readiness."""
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
        )

    async def setup_hook(self) -> None:
        """Sync one global command."""
        self.tree.add_command(ping)
        await self.tree.sync()


async def test_sharded_bot_uses_gateway_bot(world: World) -> None:
    """AutoShardedBot connects through GET /gateway/bot and still handles interactions."""
    fake = world.fake
    async with running(ShardedBot(), fake):
        assert ("GET", "/gateway/bot") in {(r.method, r.path) for r in fake.requests}
        assert fake.gateway.identifies[0]["shard"] == [0, 1]
        handle = await fake.slash(world.guild, world.channel_id, world.alice, "ping")
        assert (await handle.wait_response()).content == "pong"


async def test_resume_goes_to_resume_gateway_url(bot: MiniBot, world: World) -> None:
    """After op 7 RECONNECT discord.py resumes on READY's resume_gateway_url."""
    fake = world.fake
    await fake.request_reconnect()
    await fake.wait_resumed()
    assert fake.gateway.connections[-1].path == "/gateway-resume"
    handle = await fake.slash(world.guild, world.channel_id, world.alice, "ping")
    assert (await handle.wait_callback())["type"] == 4


# interactions


async def test_slash_reply_is_recorded(bot: MiniBot, world: World) -> None:
    """A slash command's CHANNEL_MESSAGE_WITH_SOURCE is recorded with its message."""
    fake = world.fake
    handle = await fake.slash(world.guild, world.channel_id, world.alice, "ping")
    callback = await handle.wait_callback()
    assert callback["type"] == 4 and callback["data"]["content"] == "pong"
    assert handle.callback_at is not None and handle.dispatched_at is not None
    reply = await handle.wait_response()
    assert reply.content == "pong" and not reply.ephemeral
    assert fake.callbacks[-1].interaction_id == handle.id
    assert reply in fake.messages(world.channel_id)
    assert fake.invalid_requests == []


async def test_defer_then_followup_completes_placeholder(bot: MiniBot, world: World) -> None:
    """The first follow-up after a deferral edits the 'thinking' message."""
    handle = await world.fake.slash(world.guild, world.channel_id, world.alice, "think")
    assert (await handle.wait_callback())["type"] == 5
    reply = await handle.wait_response(lambda m: m.content == "thought about it")
    assert reply is handle.original and not reply.loading
    assert handle.responses == [reply]
    assert world.fake.invalid_requests == []


async def test_ephemeral_deferral_stays_ephemeral(bot: MiniBot, world: World) -> None:
    """A follow-up to an ephemeral defer stays ephemeral and is only visible to the invoker."""
    fake = world.fake
    handle = await fake.slash(world.guild, world.channel_id, world.alice, "secret")
    reply = await handle.wait_response()
    assert reply.content == "for your eyes" and reply.ephemeral
    assert reply in fake.messages(world.channel_id, as_user=world.alice)
    assert reply not in fake.messages(world.channel_id, as_user=world.mod)


async def test_second_callback_is_rejected(bot: MiniBot, world: World) -> None:
    """Acknowledging an interaction twice answers 400 / 40060."""
    fake = world.fake
    handle = await fake.slash(world.guild, world.channel_id, world.alice, "ping")
    await handle.wait_callback()
    url = f"{fake.api_base}/interactions/{handle.id}/{handle.token}/callback"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"type": 4, "data": {"content": "again"}}) as response:
            body = await response.json()
    assert response.status == 400 and body["code"] == 40060
    assert len([c for c in fake.callbacks if c.interaction_id == handle.id]) == 1


async def test_expired_token_rejects_followups(bot: MiniBot, world: World) -> None:
    """Fifteen minutes after the interaction, webhook calls answer 401 / 50027."""
    fake = world.fake
    await fake.slash(world.guild, world.channel_id, world.alice, "later")
    interaction = await asyncio.wait_for(bot.pending, 5)
    fake.advance(15 * 60 + 1)
    with pytest.raises(discord.HTTPException) as caught:
        await interaction.followup.send("too late")
    assert caught.value.status == 401 and caught.value.code == 50027


async def test_button_click_updates_message(bot: MiniBot, world: World) -> None:
    """Clicking the button dispatches a component interaction; UPDATE_MESSAGE edits the message."""
    fake = world.fake
    handle = await fake.slash(world.guild, world.channel_id, world.alice, "buttons")
    message = await handle.wait_response()
    assert message.components[0]["components"][0]["custom_id"] == "mini:go"
    click = await fake.click(world.guild, world.channel_id, world.alice, message, "mini:go")
    assert (await click.wait_callback())["type"] == 7
    edited = await fake.wait_for_edit(lambda m: m.id == message.id and m.content == "clicked")
    assert edited.components == [] and len(edited.edits) == 1


async def test_modal_round_trip(bot: MiniBot, world: World) -> None:
    """A MODAL callback can be submitted back; the bot answers the submission."""
    fake = world.fake
    handle = await fake.slash(world.guild, world.channel_id, world.alice, "ask")
    assert (await handle.wait_callback())["type"] == 9
    submitted = await fake.submit_modal(handle, world.alice, {"mini:prompt": "a red fox"})
    reply = await submitted.wait_response()
    assert reply.content == "prompt: a red fox" and reply.ephemeral


async def test_moderator_only_command(bot: MiniBot, world: World) -> None:
    """default_member_permissions hides the command from members lacking Manage Server."""
    fake = world.fake
    with pytest.raises(PermissionError):
        await fake.slash(world.guild, world.channel_id, world.alice, "purge")
    handle = await fake.slash(world.guild, world.channel_id, world.mod, "purge")
    assert (await handle.wait_response()).content == "purged"
    member = handle.payload["member"]
    assert int(member["permissions"]) & Perm.MANAGE_GUILD


async def test_message_context_menu(bot: MiniBot, world: World) -> None:
    """A message context-menu command receives the resolved target message."""
    fake = world.fake
    said = await fake.user_message(world.guild, world.channel_id, world.alice, "hello there")
    handle = await fake.context_menu(world.guild, world.channel_id, world.mod, "Quote", said)
    assert (await handle.wait_response()).content == "> hello there"


async def test_attachment_option_and_file_reply(bot: MiniBot, world: World) -> None:
    """An attachment option is resolved, readable from the fake CDN, and a file reply is stored."""
    fake = world.fake
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cf00000001010000189dd6c20000000049454e44ae426082"
    )
    image = fake.add_attachment("dot.png", png, "image/png")
    handle = await fake.slash(
        world.guild, world.channel_id, world.alice, "describe", attachments={"image": image}
    )
    reply = await handle.wait_response()
    assert reply.content == f"dot.png {len(png)} image/png 1x1"
    assert reply.attachments == [("reversed.bin", png[::-1])]
    assert fake.invalid_requests == []


# channel messages


async def test_file_upload_is_stored_byte_identical(bot: MiniBot, world: World) -> None:
    """channel.send(file=...) is stored byte for byte and served back by the fake CDN."""
    fake, size = world.fake, 4096 + 17
    await fake.slash(world.guild, world.channel_id, world.alice, "upload", options={"size": size})
    stored = await fake.wait_for_message(lambda m: bool(m.attachments), channel=world.channel_id)
    assert stored.attachments == [("clip.bin", payload_bytes(size))]
    channel = bot.get_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)
    fetched = await channel.fetch_message(stored.id)
    assert await fetched.attachments[0].read() == payload_bytes(size)
    assert fake.invalid_requests == []


async def test_oversize_upload_gets_413(bot: MiniBot, world: World) -> None:
    """An upload above the guild's limit answers 413 / 40005 and stores nothing."""
    fake = world.fake
    handle = await fake.slash(
        world.guild, world.channel_id, world.alice, "upload", options={"size": 10 * MiB + 1}
    )
    report = await handle.wait_response(lambda m: m.content.startswith("upload failed"))
    assert report.content == "upload failed: 413 40005"
    assert not any(m.attachments for m in fake.messages(world.channel_id))
    assert fake.error_responses[-1].status == 413


async def test_rate_limited_send_is_retried(bot: MiniBot, world: World) -> None:
    """discord.py waits out a 429 (with Via) and retries; one message results."""
    fake = world.fake
    path = f"/channels/{world.channel_id}/messages"
    fake.fail_next("POST", rf"^{path}$", 429, retry_after=0.05)
    channel = bot.get_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("after the limit")
    posts = [r for r in fake.requests if r.method == "POST" and r.path == path]
    assert len(posts) == 2
    assert [m.id for m in fake.messages(world.channel_id)] == [sent.id]


async def test_invalid_body_is_rejected_and_recorded(bot: MiniBot, world: World) -> None:
    """A 2001-character message fails validation: 400 / 50035, recorded in invalid_requests."""
    fake = world.fake
    route = discord.http.Route(
        "POST", "/channels/{channel_id}/messages", channel_id=world.channel_id
    )
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.request(route, json={"content": "x" * 2001})
    assert caught.value.status == 400 and caught.value.code == 50035
    [invalid] = fake.invalid_requests
    assert invalid.errors["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert fake.messages(world.channel_id) == []


async def test_nonce_returns_existing_message(bot: MiniBot, world: World) -> None:
    """A repeated enforced nonce returns the first message instead of creating another."""
    channel = bot.get_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("once", nonce=42)
    second = await channel.send("once", nonce=42)
    assert first.id == second.id
    assert len(world.fake.messages(world.channel_id)) == 1


async def test_missing_permission_and_unknown_channel(bot: MiniBot, world: World) -> None:
    """Denied Send Messages answers 403 / 50013; a deleted channel answers 404 / 10003."""
    fake = world.fake
    fake.set_permissions(world.channel_id, send=False)
    target = bot.get_partial_messageable(world.channel_id)
    with pytest.raises(discord.Forbidden) as forbidden:
        await target.send("hello")
    assert forbidden.value.code == 50013
    fake.delete_channel(world.channel_id)
    with pytest.raises(discord.NotFound) as missing:
        await target.send("hello")
    assert missing.value.code == 10003


async def test_user_messages_respect_message_content_intent(bot: MiniBot, world: World) -> None:
    """Without MESSAGE_CONTENT the bot sees content only when it is mentioned."""
    fake = world.fake

    async def deliver(content: str) -> discord.Message:
        """Post as alice and return what the bot received."""
        waiter = asyncio.create_task(bot.wait_for("message", timeout=5))
        await fake.user_message(world.guild, world.channel_id, world.alice, content)
        return await waiter

    assert (await deliver("hello bot")).content == ""
    mention = f"{fake.bot_user.mention} hello"
    assert (await deliver(mention)).content == mention


async def test_dm_send(bot: MiniBot, world: World) -> None:
    """user.send opens a DM channel and posts into it."""
    fake = world.fake
    user = await bot.fetch_user(world.alice.id)
    await user.send("psst")
    dm = fake.dm_channel(world.alice)
    messages: list[FakeMessage] = fake.messages(dm)
    assert [m.content for m in messages] == ["psst"]


async def test_voice_reply_carries_reference_flags_and_ping(bot: MiniBot, world: World) -> None:
    """A reply names the message it answers (resolved) and pings its author unless told not to."""
    fake = world.fake
    channel = bot.get_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)
    mine = await channel.send("hello")
    original = fake.messages(world.channel_id)[-1]
    voice = fake.add_attachment("voice-message.ogg", b"OggS" + bytes(60), "audio/ogg")

    async def reply(ping: bool) -> discord.Message:
        """Send alice's voice reply and return what the bot received."""
        waiter = asyncio.create_task(
            bot.wait_for("message", check=lambda m: m.author.id == world.alice.id, timeout=5)
        )
        await fake.user_message(
            world.guild, world.channel_id, world.alice, attachments=[voice],
            reply_to=original, ping_reply=ping, flags=8192,
        )  # fmt: skip
        return await waiter

    got = await reply(True)
    assert got.flags.voice and got.reference is not None
    assert got.reference.message_id == mine.id
    assert isinstance(got.reference.resolved, discord.Message)
    assert got.reference.resolved.author.id == fake.bot_user.id
    assert [a.content_type for a in got.attachments] == ["audio/ogg"]
    silent = await reply(False)  # no ping, no MESSAGE_CONTENT: the files are hidden, like Discord
    assert silent.attachments == []
