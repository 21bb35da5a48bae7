"""Small real media files for tests: H.264 mp4, PNG, JPEG, WebP, GIF (all cached)."""

from __future__ import annotations

import base64
import functools
import random
from io import BytesIO

import av
from PIL import Image

Color = tuple[int, int, int]

_MIME_BY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def _frame_color(index: int, count: int) -> Color:
    """Colour of frame `index` of `count`: a simple gradient so frames differ."""
    step = 255 * index // max(count - 1, 1)
    return (step, 128, 255 - step)


def _encode_image(image: Image.Image, fmt: str, **options: object) -> bytes:
    """Encode a Pillow image to bytes in format `fmt`."""
    buf = BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


@functools.lru_cache(maxsize=32)
def make_mp4(seconds: float = 1.0, width: int = 64, height: int = 48, fps: int = 10) -> bytes:
    """A real H.264 mp4 (yuv420p) of `seconds` length; width and height must be even."""
    buf = BytesIO()
    count = max(1, round(seconds * fps))
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(count):
            image = Image.new("RGB", (width, height), _frame_color(index, count))
            frame = av.VideoFrame.from_image(image)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


@functools.lru_cache(maxsize=64)
def make_png(w: int = 64, h: int = 48, color: Color = (200, 40, 40)) -> bytes:
    """A solid-colour RGB PNG of w x h pixels."""
    return _encode_image(Image.new("RGB", (w, h), color), "PNG")


@functools.lru_cache(maxsize=64)
def make_jpeg(w: int = 64, h: int = 48, color: Color = (40, 200, 40)) -> bytes:
    """A solid-colour baseline JPEG of w x h pixels."""
    return _encode_image(Image.new("RGB", (w, h), color), "JPEG", quality=85)


@functools.lru_cache(maxsize=64)
def make_webp(w: int = 64, h: int = 48, color: Color = (40, 40, 200)) -> bytes:
    """A solid-colour WebP of w x h pixels."""
    return _encode_image(Image.new("RGB", (w, h), color), "WEBP", quality=80)


@functools.lru_cache(maxsize=16)
def make_gif(animated: bool = False, w: int = 64, h: int = 48) -> bytes:
    """A GIF of w x h pixels; with `animated`, three frames that loop forever."""
    if not animated:
        return _encode_image(Image.new("RGB", (w, h), (200, 200, 40)), "GIF")
    frames = [Image.new("RGB", (w, h), _frame_color(i, 3)) for i in range(3)]
    buf = BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def sniff_mime(data: bytes) -> str:
    """The image MIME type of `data` judged by its magic bytes (PNG, JPEG, GIF, WebP)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _MIME_BY_MAGIC:
        if data.startswith(magic):
            return mime
    raise ValueError("not a PNG, JPEG, GIF or WebP image")


def data_uri(data: bytes, mime: str | None = None) -> str:
    """`data:<mime>;base64,...` for `data`; the MIME type is sniffed when not given."""
    encoded = base64.b64encode(data).decode("ascii")
    return f"data:{mime or sniff_mime(data)};base64,{encoded}"


@functools.lru_cache(maxsize=4)
def make_big_mp4(seconds: float = 2.0, width: int = 320, height: int = 240, fps: int = 25) -> bytes:
    """A near-lossless H.264 mp4 of random blocks: large for its length, like detailed footage."""
    rng = random.Random(seconds * 1000 + width)
    buf = BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=fps, options={"crf": "4", "preset": "ultrafast"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(max(1, round(seconds * fps))):
            noise = bytes(rng.getrandbits(8) for _ in range((width // 8) * (height // 8) * 3))
            blocks = Image.frombytes("RGB", (width // 8, height // 8), noise)
            frame = av.VideoFrame.from_image(
                blocks.resize((width, height), Image.Resampling.NEAREST)
            )
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()
