"""Safe downloads (size cap, private-address guard) and video re-encoding to fit a size limit."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av
import httpx

from bot.errors import BotError, InputError, UnsafeURLError
from bot.images import format_size

DISCORD_ATTACHMENT_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})

MAX_REDIRECTS = 5
_CHUNK_SIZE = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Re-encoding budget. The container (moov index, SEI, padding) takes a few percent of the
# file, hence 0.92; 0.1 bits per pixel is about where H.264 at "veryfast" stops smearing.
_CONTAINER_HEADROOM = 0.92
_AUDIO_BPS = 64_000
_MIN_VIDEO_BPS = 32_000  # below this the video is an unwatchable smear: give up instead
_MIN_BITS_PER_PIXEL = 0.1
_MAX_PASSES = 3
_PASS_BITRATE_FACTOR = 0.75


class TooLargeError(InputError):
    """A download is bigger than the caller's limit (declared or while streaming)."""

    def __init__(self, limit: int) -> None:
        super().__init__("download.too_large", limit=format_size(limit))
        self.limit = limit


class DownloadError(BotError):
    """A download failed: an HTTP error status, too many redirects or a network error."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__("download.failed", reason=reason)
        self.reason = reason
        self.status = status


class VideoError(BotError):
    """A video file could not be read or converted."""

    def __init__(self, reason: str) -> None:
        super().__init__("video.unreadable")
        self.reason = reason

    def __str__(self) -> str:
        return f"video error: {self.reason}"  # not for members


@dataclass(frozen=True)
class VideoInfo:
    """Duration (seconds), frame size and whether an audio track exists."""

    duration: float
    width: int
    height: int
    has_audio: bool


# ---------------------------------------------------------------------------- URL guard


async def check_url(
    url: str, *, allowed_hosts: frozenset[str] | None, trusted_hosts: frozenset[str]
) -> None:
    """Raise UnsafeURLError unless `url` is http(s), on an allowed host, and not private.

    The host is resolved here, before connecting, and the connection resolves it again:
    a DNS-rebinding attacker could answer differently the second time. A stricter guard
    would connect to the exact address checked here (pinning it in the transport); for
    Discord's CDN plus operator-trusted hosts this simple check is the chosen trade-off.
    """
    host, port = _host_and_port(url)
    if allowed_hosts is not None and host not in allowed_hosts and host not in trusted_hosts:
        raise UnsafeURLError("url.host_not_accepted", host=host)
    if host in trusted_hosts:
        return
    for address in await _resolve(host, port):
        if _is_forbidden(address):
            raise UnsafeURLError("url.private", host=host)


def _host_and_port(url: str) -> tuple[str, int]:
    """The lower-cased host and port of an http(s) URL, or UnsafeURLError."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")  # "localhost." is "localhost"
        port = parts.port
    except ValueError:  # e.g. a port that is not a number
        raise UnsafeURLError("url.malformed") from None
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeURLError("url.scheme")
    if not host:
        raise UnsafeURLError("url.no_host")
    return host, port or _DEFAULT_PORTS[scheme]


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address `host` resolves to (a literal IP is returned as is)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:  # socket.gaierror: unknown host, no DNS
        raise UnsafeURLError("url.unknown_host", host=host) from None
    # sockaddr[0] may carry an IPv6 zone ("fe80::1%eth0"); the zone does not change the class.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _is_forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for any address that is not a plain public unicast one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global  # e.g. 100.64.0.0/10 carrier-grade NAT
    )


# ---------------------------------------------------------------------------- downloads


async def download_bytes(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    allowed_hosts: frozenset[str] | None,
    trusted_hosts: frozenset[str],
) -> bytes:
    """Download `url` into memory, refusing more than `max_bytes` and unsafe hops."""
    body = bytearray()
    async with _checked_stream(client, url, max_bytes, allowed_hosts, trusted_hosts) as chunks:
        async for chunk in chunks:
            body += chunk
    return bytes(body)


async def download_to_file(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    allowed_hosts: frozenset[str] | None,
    trusted_hosts: frozenset[str],
) -> int:
    """Stream `url` into `dest` chunk by chunk; return bytes written, remove `dest` on failure."""
    written = 0
    try:
        async with _checked_stream(client, url, max_bytes, allowed_hosts, trusted_hosts) as chunks:
            # File calls go to a thread so a slow disk never stalls the event loop.
            handle = await asyncio.to_thread(dest.open, "wb")
            try:
                async for chunk in chunks:
                    await asyncio.to_thread(handle.write, chunk)
                    written += len(chunk)
            finally:
                await asyncio.to_thread(handle.close)
    except BaseException:  # includes cancellation: never leave a partial file behind
        await asyncio.to_thread(dest.unlink, missing_ok=True)
        raise
    return written


@asynccontextmanager
async def _checked_stream(
    client: httpx.AsyncClient,
    url: str,
    max_bytes: int,
    allowed_hosts: frozenset[str] | None,
    trusted_hosts: frozenset[str],
) -> AsyncIterator[AsyncIterator[bytes]]:
    """Follow redirects by hand (checking every hop) and yield the body's size-capped chunks."""
    try:
        for _ in range(MAX_REDIRECTS + 1):
            await check_url(url, allowed_hosts=allowed_hosts, trusted_hosts=trusted_hosts)
            async with client.stream("GET", url, follow_redirects=False) as response:
                if response.has_redirect_location:
                    url = str(response.url.join(response.headers["Location"]))
                    continue
                _check_response(response, max_bytes)
                # aclosing: if the caller fails mid-body, the generator is closed right here.
                async with aclosing(_capped(response.aiter_bytes(_CHUNK_SIZE), max_bytes)) as body:
                    yield body
                return
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise DownloadError(f"network error: {type(exc).__name__}") from exc  # not for members
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects")  # not for members


def _check_response(response: httpx.Response, max_bytes: int) -> None:
    """Refuse error statuses and bodies whose declared length is over the limit."""
    if not response.is_success:
        raise DownloadError(f"HTTP {response.status_code}", status=response.status_code)
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLargeError(max_bytes)


async def _capped(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """Pass chunks through, raising TooLargeError as soon as the total exceeds `max_bytes`.

    Counting decoded bytes (not Content-Length) also stops compressed "zip bombs".
    """
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise TooLargeError(max_bytes)
        yield chunk


# ---------------------------------------------------------------------------- video


def probe_video(path: Path) -> VideoInfo:
    """Read duration, size and audio presence from the container headers."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video track")  # not for members
            stream = container.streams.video[0]
            return VideoInfo(
                duration=_duration(container, stream),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                has_audio=bool(container.streams.audio),
            )
    except av.FFmpegError as exc:
        raise VideoError(str(exc)) from exc


def reencode_to_fit(src: Path, dest: Path, *, max_bytes: int) -> bool:
    """Re-encode `src` to an H.264/AAC mp4 `dest` ≤ `max_bytes`; False (and no `dest`) if not."""
    info = probe_video(src)
    video_bps, keep_audio = _budget(info, max_bytes)
    try:
        for _ in range(_MAX_PASSES):
            if video_bps < _MIN_VIDEO_BPS:
                break
            _encode(src, dest, video_bps=video_bps, keep_audio=keep_audio)
            if dest.stat().st_size <= max_bytes:
                return True
            video_bps = int(video_bps * _PASS_BITRATE_FACTOR)  # x264 overshot: aim lower
    except av.FFmpegError as exc:
        dest.unlink(missing_ok=True)
        raise VideoError(str(exc)) from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    dest.unlink(missing_ok=True)
    return False


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Duration in seconds from the container, else the stream, else 0 (unknown)."""
    if container.duration:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return 0.0


def _budget(info: VideoInfo, max_bytes: int) -> tuple[int, bool]:
    """The video bitrate to aim for and whether the audio track still fits in the budget."""
    if info.duration <= 0:
        return 0, False  # no duration, no budget: the caller's loop gives up at once
    total_bps = max_bytes * _CONTAINER_HEADROOM * 8 / info.duration
    # Keep sound only while the picture still gets most of the bits.
    keep_audio = info.has_audio and total_bps >= 4 * _AUDIO_BPS
    video_bps = total_bps - (_AUDIO_BPS if keep_audio else 0)
    return int(video_bps), keep_audio


def _frame_size(width: int, height: int, fps: float, video_bps: int) -> tuple[int, int]:
    """Scale down (aspect kept, even sides) until each pixel gets ≥ 0.1 bit per frame."""
    affordable = video_bps / (fps * _MIN_BITS_PER_PIXEL)
    scale = min(1.0, math.sqrt(affordable / (width * height)))
    return _even(width * scale), _even(height * scale)


def _even(value: float) -> int:
    """Round down to an even number ≥ 2: yuv420p needs even dimensions."""
    return max(2, int(value) // 2 * 2)


def _encode(src: Path, dest: Path, *, video_bps: int, keep_audio: bool) -> None:
    """One decode → encode pass into `dest` (mp4, index up front so it plays while loading)."""
    with (
        av.open(str(src)) as source,
        av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as target,
    ):
        video_in = source.streams.video[0]
        audio_in = source.streams.audio[0] if keep_audio and source.streams.audio else None
        video_out = _add_video_stream(target, video_in, video_bps)
        audio_out = _add_audio_stream(target, audio_in) if audio_in else None
        _transcode(source, target, video_out, audio_out)


def _transcode(
    source: av.container.InputContainer,
    target: av.container.OutputContainer,
    video_out: av.VideoStream,
    audio_out: av.AudioStream | None,
) -> None:
    """Decode and encode frame by frame, so memory stays flat whatever the video's length."""
    inputs = [source.streams.video[0]] + ([source.streams.audio[0]] if audio_out else [])
    last_pts: int | None = None
    for packet in source.demux(*inputs):
        for frame in packet.decode():
            if isinstance(frame, av.VideoFrame):
                frame = frame.reformat(video_out.width, video_out.height, "yuv420p")
                last_pts = _fix_pts(frame, last_pts)
                target.mux(video_out.encode(frame))
            elif audio_out is not None:
                target.mux(audio_out.encode(frame))
    for stream in (video_out, audio_out):
        if stream is not None:
            target.mux(stream.encode(None))  # flush the encoder's delayed frames


def _add_video_stream(
    target: av.container.OutputContainer, video_in: av.VideoStream, video_bps: int
) -> av.VideoStream:
    """An H.264 stream at `video_bps`, keeping the source's clock for exact timing."""
    rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
    width, height = _frame_size(
        video_in.codec_context.width, video_in.codec_context.height, float(rate), video_bps
    )
    stream = target.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.bit_rate = video_bps
    stream.time_base = video_in.time_base
    stream.codec_context.time_base = video_in.time_base
    # A VBV cap stops x264's average-bitrate mode from spending the whole budget early.
    stream.options = {
        "preset": "veryfast",
        "maxrate": str(int(video_bps * 1.5)),
        "bufsize": str(video_bps * 2),
    }
    return stream


def _add_audio_stream(
    target: av.container.OutputContainer, audio_in: av.AudioStream
) -> av.AudioStream:
    """An AAC stream at 64 kb/s with the source's sample rate and channel layout."""
    stream = target.add_stream("aac", rate=audio_in.codec_context.sample_rate)
    stream.layout = audio_in.codec_context.layout
    stream.bit_rate = _AUDIO_BPS
    return stream


def _fix_pts(frame: av.VideoFrame, last_pts: int | None) -> int:
    """Make timestamps strictly increasing (x264 refuses repeats; some files lack them)."""
    if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
        frame.pts = 0 if last_pts is None else last_pts + 1
    return frame.pts
