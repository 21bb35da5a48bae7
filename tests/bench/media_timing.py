"""`python -m tests.bench.media_timing [--runs N]`: still and voice timings against the fake.

Also the bench's `media` figure (`python -m tests.bench media`).

Not a test: prints the bot-side time from request to still (validate, POST, download the PNG)
and from voice file to transcript (convert with PyAV, multipart POST), with the fake answering
at once, so the figures are the bot's own overhead on top of Z.AI's generation time.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import httpx
from pydantic import SecretStr

from bot.media import download_to_file
from bot.stills import validate_still
from bot.voice import SpeechFormat, speech_from_file
from bot.zai_media import ZaiMediaClient
from tests.bench.common import Context, Figure, Table
from tests.fakes.audio import make_audio
from tests.fakes.zai import FakeZai

SCRATCH = Path("data/bench-scratch")  # next to the bot's data, not /tmp
LOOPBACK = frozenset({"127.0.0.1"})


async def _timed(runs: int, step: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """Median and worst of `runs` timings of `step` (one warm-up run first), in ms."""
    await step()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


async def _still(
    client: ZaiMediaClient, http: httpx.AsyncClient, model: str, size: str, scratch: Path = SCRATCH
) -> None:
    """Validate, generate and download one still to a scratch file."""
    request = validate_still("a kitten on a sunny windowsill", model=model, size=size)
    result = await client.generate_still(request, user_id="bench-user-1")
    dest = scratch / "still.png"
    await download_to_file(
        http, result.url, dest, max_bytes=20_000_000, allowed_hosts=None, trusted_hosts=LOOPBACK
    )


async def _voice(
    client: ZaiMediaClient, src: Path, fmt: SpeechFormat, scratch: Path = SCRATCH
) -> None:
    """Convert a voice file and transcribe it."""
    async with speech_from_file(src, scratch, fmt) as audio:
        await client.transcribe(audio.path, mime=fmt.mime, hotwords=["CogVideoX"])


async def rows(runs: int, scratch: Path) -> list[tuple[str, float, float]]:
    """(what, median ms, max ms) of every timing."""
    found = []
    async with FakeZai() as fake, httpx.AsyncClient(timeout=30) as http:
        client = ZaiMediaClient(http, fake.base_url, SecretStr(fake.api_key))
        for model, size in [("glm-image", "1280x1280"), ("cogview-4-250304", "1024x1024")]:
            step = partial(_still, client, http, model, size, scratch)
            found.append((f"still {model} {size}", *await _timed(runs, step)))
        for seconds in (3.0, 10.0, 30.0):
            src = scratch / f"voice-{seconds:g}.ogg"
            src.write_bytes(make_audio(seconds, "ogg"))
            for fmt in SpeechFormat:
                step = partial(_voice, client, src, fmt, scratch)
                found.append((f"voice {seconds:g} s ogg/opus → {fmt}", *await _timed(runs, step)))
    return found


async def media_figure(ctx: Context) -> Figure:
    """The bench's `media` figure: the bot's own time per still and per transcription."""
    runs = 5 if ctx.quick else 20
    measured = await rows(runs, ctx.dir("media"))
    table = Table(
        ["step (fake answers at once)", "median", "max"],
        [[what, f"{med:.1f} ms", f"{worst:.1f} ms"] for what, med, worst in measured],
    )
    return Figure(
        "media",
        "Stills and spoken prompts: the bot's own time",
        f"{runs} runs each after a warm-up against the loopback fake Z.AI (no generation "
        "time): a still is validated, generated and its PNG downloaded; a voice message is "
        "converted with PyAV and sent as multipart.",
        tables=[table],
        raw={"rows": measured},
    )


async def main(runs: int) -> None:
    """Print one line per figure."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for what, med, worst in await rows(runs, SCRATCH):
        print(f"{what}: median {med:.1f} ms, max {worst:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    try:
        asyncio.run(main(parser.parse_args().runs))
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
