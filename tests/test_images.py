"""Tests for bot.images: sniffing, refusing bad pictures and fitting them under a size limit."""

from __future__ import annotations

import base64
import io
import os
import random
import struct
import zlib
from collections.abc import Callable

import pytest
from PIL import ExifTags, Image

from bot.errors import InputError
from bot.images import (
    MAX_PIXELS,
    SUPPORTED,
    fit_image,
    format_size,
    inspect_image,
    to_data_uri,
)

PNG_OR_JPEG = frozenset({"PNG", "JPEG"})


def encode(img: Image.Image, image_format: str, **options: object) -> bytes:
    """Save `img` in `image_format` and return the bytes."""
    buffer = io.BytesIO()
    img.save(buffer, image_format, **options)
    return buffer.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB", seed: int | None = None) -> Image.Image:
    """An incompressible picture; seeded when the test needs the exact same bytes."""
    count = size[0] * size[1] * len(mode)
    raw = os.urandom(count) if seed is None else random.Random(seed).randbytes(count)
    return Image.frombytes(mode, size, raw)


def png_claiming(width: int, height: int) -> bytes:
    """A real tiny PNG whose IHDR claims `width`×`height` (CRC fixed, pixel data untouched)."""
    data = bytearray(encode(Image.new("L", (4, 4)), "PNG"))
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(data[ihdr - 4 : ihdr + 13]))
    return bytes(data)


def with_bytes_replaced(data: bytes, junk: bytes) -> bytes:
    """`data` with `junk` written over its middle."""
    middle = len(data) // 2
    return data[:middle] + junk + data[middle + len(junk) :]


def animation(image_format: str) -> bytes:
    """A three-frame animation in `image_format`."""
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    return encode(frames[0], image_format, save_all=True, append_images=frames[1:])


def multi_picture_jpeg() -> bytes:
    """An MPO file, as phones write for depth maps: a JPEG followed by a second JPEG."""
    main, extra = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (64, 48), "blue")
    return encode(main, "MPO", save_all=True, append_images=[extra])


def rotated_jpeg(size: tuple[int, int], orientation: int) -> bytes:
    """A JPEG stored as `size` whose EXIF says to display it rotated."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encode(noise(size, seed=3), "JPEG", exif=exif.tobytes())


PHOTO_PNG = encode(noise((96, 64), seed=1), "PNG")
PHOTO_JPEG = encode(noise((96, 64), seed=2), "JPEG", quality=90)

REFUSED: list[tuple[str, Callable[[], bytes], str]] = [
    ("text-named-cat.png", lambda: b"meow, definitely a cat picture\n" * 20, "not a picture"),
    ("empty", lambda: b"", "empty"),
    ("png-cut-in-half", lambda: PHOTO_PNG[: len(PHOTO_PNG) // 2], "damaged"),
    ("png-without-end", lambda: PHOTO_PNG[:-12], "damaged"),
    ("jpeg-cut-in-half", lambda: PHOTO_JPEG[: len(PHOTO_JPEG) // 2], "damaged"),
    ("jpeg-without-end", lambda: PHOTO_JPEG[:-10], "damaged"),
    ("png-zeros-in-middle", lambda: with_bytes_replaced(PHOTO_PNG, bytes(64)), "damaged"),
    (
        "png-junk-in-middle",
        lambda: with_bytes_replaced(PHOTO_PNG, random.Random(4).randbytes(64)),
        "damaged",
    ),
    # Pixel data is only 4×4: reaching "damaged" would mean it was decoded before the check.
    ("header-7000x7000", lambda: png_claiming(7000, 7000), "too many pixels"),
    ("pillow-bomb-50000x50000", lambda: png_claiming(50_000, 50_000), "too many pixels"),
    ("tiff", lambda: encode(noise((64, 48)), "TIFF"), "TIFF file"),  # item 21: named
]


@pytest.mark.parametrize(
    ("make_data", "expected"),
    [pytest.param(make, expected, id=name) for name, make, expected in REFUSED],
)
def test_inspect_refuses(make_data: Callable[[], bytes], expected: str) -> None:
    with pytest.raises(InputError) as caught:
        inspect_image(make_data())
    assert expected.lower() in caught.value.user_message.lower()


@pytest.mark.parametrize(
    ("data", "width", "height", "image_format"),
    [
        pytest.param(PHOTO_PNG, 96, 64, "PNG", id="png"),
        pytest.param(PHOTO_JPEG, 96, 64, "JPEG", id="jpeg"),
        pytest.param(encode(noise((50, 40), seed=5), "WEBP"), 50, 40, "WEBP", id="webp"),
        pytest.param(encode(Image.new("L", (1, 10_000)), "PNG"), 1, 10_000, "PNG", id="1x10000"),
        pytest.param(encode(noise((40, 30), seed=6), "GIF"), 40, 30, "GIF", id="still-gif"),
        pytest.param(encode(noise((40, 30), seed=7), "BMP"), 40, 30, "BMP", id="bmp"),
        pytest.param(rotated_jpeg((80, 60), 6), 60, 80, "JPEG", id="exif-rotated-jpeg"),
        pytest.param(multi_picture_jpeg(), 64, 48, "MPO", id="multi-picture-jpeg-is-still"),
    ],
)
def test_inspect_accepts(data: bytes, width: int, height: int, image_format: str) -> None:
    info = inspect_image(data)
    assert (info.width, info.height, info.format) == (width, height, image_format)
    assert info.size_bytes == len(data)
    assert info.aspect == pytest.approx(width / height)


def test_pixel_limit_allows_a_picture_at_the_limit() -> None:
    side = int(MAX_PIXELS**0.5)
    with pytest.raises(InputError, match="damaged"):  # passes the pixel check, fails decoding
        inspect_image(png_claiming(side, side))


def test_small_jpeg_is_returned_unchanged() -> None:
    data, mime = fit_image(PHOTO_JPEG, max_bytes=1_000_000, formats=SUPPORTED)
    assert data is PHOTO_JPEG
    assert mime == "image/jpeg"


@pytest.mark.parametrize(
    ("source", "formats", "expected_format"),
    [
        pytest.param(encode(noise((40, 30), seed=8), "GIF"), PNG_OR_JPEG, "PNG", id="gif-to-png"),
        pytest.param(encode(noise((40, 30), seed=9), "BMP"), PNG_OR_JPEG, "PNG", id="bmp-to-png"),
        pytest.param(
            encode(noise((40, 30), seed=10), "BMP"), frozenset({"JPEG"}), "JPEG", id="bmp-to-jpeg"
        ),
        pytest.param(
            encode(noise((40, 30), seed=11), "WEBP"), PNG_OR_JPEG, "JPEG", id="webp-to-jpeg"
        ),
        pytest.param(
            encode(noise((40, 30), seed=14), "JPEG"), frozenset({"WEBP"}), "WEBP", id="jpeg-to-webp"
        ),
        pytest.param(
            encode(noise((40, 30), "RGBA", seed=12), "WEBP", lossless=True),
            PNG_OR_JPEG,
            "PNG",
            id="transparent-webp-to-png",
        ),
    ],
)
def test_fit_converts_formats(source: bytes, formats: frozenset[str], expected_format: str) -> None:
    data, mime = fit_image(source, max_bytes=1_000_000, formats=formats)
    info = inspect_image(data)
    assert info.format == expected_format
    assert mime == f"image/{expected_format.lower()}"
    assert (info.width, info.height) == (40, 30)


def test_fit_turns_multi_picture_jpeg_into_plain_jpeg() -> None:
    data, mime = fit_image(multi_picture_jpeg(), max_bytes=1_000_000, formats=SUPPORTED)
    assert (inspect_image(data).format, mime) == ("JPEG", "image/jpeg")


def test_fit_keeps_transparency_in_png() -> None:
    source = encode(noise((40, 30), "RGBA", seed=13), "WEBP", lossless=True)
    data, _ = fit_image(source, max_bytes=1_000_000, formats=PNG_OR_JPEG)
    assert Image.open(io.BytesIO(data)).mode == "RGBA"


def test_fit_shrinks_big_noisy_png_keeping_aspect() -> None:
    source = encode(noise((1200, 741)), "PNG")
    assert len(source) > 2_000_000

    data, mime = fit_image(source, max_bytes=200_000, formats=PNG_OR_JPEG)

    info = inspect_image(data)
    assert len(data) <= 200_000
    assert mime == "image/jpeg"
    assert info.width < 1200
    assert info.aspect == pytest.approx(1200 / 741, rel=0.01)


def test_fit_shrinks_png_when_png_is_the_only_format() -> None:
    source = encode(noise((600, 400), seed=15), "PNG")

    data, mime = fit_image(source, max_bytes=400_000, formats=frozenset({"PNG"}))

    info = inspect_image(data)
    assert len(data) <= 400_000 < len(source)
    assert (info.format, mime) == ("PNG", "image/png")
    assert info.aspect == pytest.approx(600 / 400, rel=0.01)


def test_fit_bakes_exif_rotation_in() -> None:
    data, mime = fit_image(rotated_jpeg((80, 60), 6), max_bytes=1_000_000, formats=SUPPORTED)
    img = Image.open(io.BytesIO(data))
    assert img.size == (60, 80)
    assert img.getexif().get(ExifTags.Base.Orientation, 1) == 1
    assert mime == "image/jpeg"


def test_fit_refuses_when_impossible() -> None:
    with pytest.raises(InputError, match="too large to send even after shrinking") as caught:
        fit_image(PHOTO_PNG, max_bytes=100, formats=PNG_OR_JPEG)
    assert "100 bytes" in caught.value.user_message


def test_fit_refuses_unknown_target_formats() -> None:
    with pytest.raises(ValueError, match="can only encode"):
        fit_image(PHOTO_PNG, max_bytes=1_000_000, formats=frozenset({"GIF"}))


def test_fit_refuses_bad_input_before_encoding() -> None:
    with pytest.raises(InputError, match="not a picture"):
        fit_image(b"not an image", max_bytes=1_000_000, formats=SUPPORTED)


def test_to_data_uri_round_trips() -> None:
    uri = to_data_uri(PHOTO_PNG, "image/png")
    prefix, payload = uri.split(",", 1)
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(payload) == PHOTO_PNG


@pytest.mark.parametrize(
    ("size", "text"),
    [(100, "100 bytes"), (2048, "2 KB"), (25 * 1024 * 1024, "25 MB"), (8_000_000, "7.63 MB")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
