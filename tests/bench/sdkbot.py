"""The usual way, as a baseline: a discord.py bot calling the official zai-sdk in a thread pool.

It answers the command at once, submits, then polls every `interval` seconds (the SDK
example's loop), downloads the video into memory and posts it. zai-sdk 0.2.3 sends every unset
parameter of `videos.generations` as null, which the fake (strict to the spec) refuses, so the
submit goes through the SDK's own `post` with only the given fields; polls are
`videos.retrieve_videos_result`, exactly as in the SDK's example.
"""

from __future__ import annotations

import asyncio
import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import discord
import httpx
from discord import app_commands

from cogs.app import configure_endpoints
from tests.bench.child import Events, until_stopped


class SdkBot(discord.Client):
    """A minimal bot with /video text and /video image."""

    def __init__(self, config: dict[str, Any], events: Events) -> None:
        super().__init__(intents=discord.Intents.default())
        from zai import ZaiClient  # only this baseline needs zai-sdk

        self.sdk = ZaiClient(api_key=config["zai_api_key"], base_url=config["zai_base_url"])
        self.pool = ThreadPoolExecutor(config["threads"])
        self.interval = config["interval"]
        self.ack_only = config.get("ack_only", False)  # the floor: a bot that only answers
        self.guild_id = config["guild_id"]
        self.events = events
        self.tree = app_commands.CommandTree(self)
        self.jobs: set[asyncio.Task[None]] = set()
        self.tree.add_command(self._group(), guild=discord.Object(self.guild_id))

    def _group(self) -> app_commands.Group:
        """/video text and /video image."""
        group = app_commands.Group(name="video", description="Make a video")

        @group.command(name="text", description="Text to video")
        async def text(
            interaction: discord.Interaction, prompt: str, model: str = "cogvideox-3"
        ) -> None:
            await self.generate(interaction, {"model": model, "prompt": prompt})

        @group.command(name="image", description="Image to video")
        async def image(
            interaction: discord.Interaction,
            image: discord.Attachment,
            model: str = "vidu2-image",
            prompt: str | None = None,
        ) -> None:
            body = {"model": model, "image_url": image.url}
            if prompt:
                body["prompt"] = prompt
            await self.generate(interaction, body)

        return group

    async def setup_hook(self) -> None:
        """Sync the commands to the guild."""
        await self.tree.sync(guild=discord.Object(self.guild_id))

    async def generate(self, interaction: discord.Interaction, body: dict[str, Any]) -> None:
        """Answer, submit, poll every `interval`, download, post."""
        await interaction.response.send_message("🎬 Generating your video…", ephemeral=True)
        if self.ack_only:
            return
        loop = asyncio.get_running_loop()
        task = await loop.run_in_executor(self.pool, self._submit, body)
        while True:
            await asyncio.sleep(self.interval)
            result = await loop.run_in_executor(
                self.pool, self.sdk.videos.retrieve_videos_result, task.id
            )
            if result.task_status != "PROCESSING":
                break
        seen = time.time()
        if result.task_status != "SUCCESS":
            return
        data = await loop.run_in_executor(self.pool, _download, result.video_result[0].url)
        channel = self.get_partial_messageable(interaction.channel_id or 0)
        file = discord.File(io.BytesIO(data), filename="video.mp4")
        content = f"<@{interaction.user.id}> {RESULT_TEXT} (task {task.id})"
        message = await channel.send(content, file=file)
        self.events.emit("delivered", task_id=task.id, seen=seen, message_id=message.id)

    def _submit(self, body: dict[str, Any]) -> Any:
        """POST /videos/generations through the SDK's client."""
        from zai.types.video import VideoObject

        return self.sdk.post("/videos/generations", body=body, cast_type=VideoObject)


RESULT_TEXT = "your video is ready"


def _download(url: str) -> bytes:
    """The whole video in memory, as `requests.get(url).content` would."""
    response = httpx.get(url, timeout=120)
    response.raise_for_status()
    return response.content


async def run(config: dict[str, Any], events: Events) -> None:
    """Run the baseline bot until SIGTERM."""
    configure_endpoints(config["discord_api_base"], config["discord_gateway_url"])
    client = SdkBot(config, events)
    async with client:
        runner = asyncio.create_task(client.start(config["discord_token"]))
        stopper = asyncio.create_task(until_stopped())
        events.emit("started")
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        await client.close()
        await asyncio.gather(runner, return_exceptions=True)
    client.pool.shutdown(wait=False, cancel_futures=True)
