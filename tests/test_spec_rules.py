"""Issue 10 items 17-20: each of seed 000's image rules applies to the models it is given to."""

from __future__ import annotations

import pytest

from bot import models
from bot.engine import prepare_images
from bot.errors import InputError
from bot.images import ImageInfo
from bot.models import Mode, VideoOptions
from tests.fakes.zai import ZaiRequestError, validate_request


def img(w: int, h: int) -> ImageInfo:
    return ImageInfo(w, h, "PNG", 1000)


def test_cogvideox3_has_no_aspect_or_similar_frames_rule() -> None:  # item 17
    models.check_images("cogvideox-3", Mode.IMAGE, [img(5000, 1000)])
    models.check_images("cogvideox-3", Mode.FRAMES, [img(1000, 1000), img(1000, 700)])


@pytest.mark.parametrize("model", ["viduq1-start-end", "vidu2-start-end"])
def test_vidu_start_end_keeps_the_similar_frames_rule(model: str) -> None:
    with pytest.raises(InputError, match="0.8–1.25"):
        models.check_images(model, Mode.FRAMES, [img(1000, 1000), img(1000, 700)])


@pytest.mark.parametrize("size", [(4000, 1000), (1000, 4000)])
@pytest.mark.parametrize("model", ["viduq1-image", "vidu2-image"])
def test_vidu_ratio_is_strictly_below_four(model: str, size: tuple[int, int]) -> None:  # 18
    with pytest.raises(InputError, match="less than 4 times"):
        models.check_images(model, Mode.IMAGE, [img(*size)])
    models.check_images(model, Mode.IMAGE, [img(3999, 1000)])


def test_the_fake_refuses_exactly_four_to_one_too() -> None:
    from tests.fakes.media import data_uri, make_png

    body = {"model": "vidu2-image", "image_url": data_uri(make_png(400, 100)),
            "request_id": "r" * 8, "user_id": "1234567"}  # fmt: skip
    with pytest.raises(ZaiRequestError, match="aspect ratio"):
        validate_request(body)


def test_cogvideox3_images_are_fitted_under_five_million_bytes() -> None:  # item 19
    assert models.get_spec("cogvideox-3").max_image_bytes < 5_000_000
    assert all(spec.max_image_bytes < 50_000_000 for spec in models.MODELS.values())


def test_a_picture_of_exactly_5_000_000_bytes_is_shrunk_for_cogvideox3() -> None:
    import io

    from PIL import Image

    picture = Image.effect_noise((1200, 1200), 120).convert("RGB")  # noise: PNG cannot shrink it
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=0)
    raw = buffer.getvalue()
    # Grow it to exactly 5,000,000 bytes with a text chunk before IEND.
    padded = raw[:-12] + _text_chunk(5_000_000 - len(raw)) + raw[-12:]
    assert len(padded) == 5_000_000
    [stored] = prepare_images("cogvideox-3", Mode.IMAGE, [padded])
    assert len(stored.data) < 5_000_000


def _text_chunk(total: int) -> bytes:
    """A tEXt chunk of exactly `total` bytes (12 bytes of framing)."""
    import struct
    import zlib

    payload = b"pad\x00" + b"x" * (total - 12 - 4)
    return (
        struct.pack(">I", len(payload)) + b"tEXt" + payload
        + struct.pack(">I", zlib.crc32(b"tEXt" + payload))
    )  # fmt: skip


@pytest.mark.parametrize("model", ["viduq1-start-end", "vidu2-start-end"])
def test_start_end_models_take_one_or_two_images(model: str) -> None:  # item 20
    assert models.image_count(model, Mode.FRAMES) == (1, 2)
    models.check_images(model, Mode.FRAMES, [img(1000, 1000)])
    body = models.build_body(
        model, Mode.FRAMES, "go", VideoOptions(), ["data:x"], request_id="r" * 8,
        user_id="1234567",
    )  # fmt: skip
    assert body["image_url"] == ["data:x"]
    assert models.image_count("cogvideox-3", Mode.FRAMES) == (2, 2)


def test_cogvideox3_frames_mode_allows_only_speed() -> None:  # item 20
    assert models.allowed_values("cogvideox-3", "quality", Mode.FRAMES) == ("speed",)
    assert models.allowed_values("cogvideox-3", "quality", Mode.IMAGE) == ("speed", "quality")
    with pytest.raises(InputError, match="speed"):
        models.check_request("cogvideox-3", Mode.FRAMES, None, VideoOptions(quality="quality"))
    models.check_request("cogvideox-3", Mode.FRAMES, None, VideoOptions(quality="speed"))
