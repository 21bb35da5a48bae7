"""Issue 10 items 3, 15, 21: metadata never leaves, every malformed picture is an InputError,
formats the bot cannot send are named, animations are used by their first frame."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib

import pytest
from PIL import ExifTags, Image

from bot.engine import Engine, JobEvent, JobRequest, prepare_pictures
from bot.errors import InputError
from bot.images import SUPPORTED, fit_image, inspect_image, strip_metadata
from bot.models import Mode
from storage.db import Database
from tests.conftest import Recorder
from tests.fakes.zai import FakeZai

GPS_LATITUDE = (48.0, 51.0, 29.64)  # a home address, as a phone writes it
MARKERS = (b"GPS-SECRET-COMMENT", b"xmp-secret-creator", b"Exif\x00\x00")


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.2)
    return exif


def _xmp() -> bytes:
    return b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>xmp-secret-creator</dc:creator></x:xmpmeta>'


def gps_jpeg(size: tuple[int, int] = (400, 300), orientation: int = 1) -> bytes:
    """A photo as a phone saves it: EXIF with GPS, XMP and a comment."""
    picture = Image.radial_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", exif=_exif(orientation), xmp=_xmp(), comment=MARKERS[0])
    return buffer.getvalue()


def gps_png() -> bytes:
    """A PNG with eXIf and text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", MARKERS[0].decode())
    info.add_itxt("XML:com.adobe.xmp", _xmp().decode())
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "teal").save(buffer, "PNG", exif=_exif(), pnginfo=info)
    return buffer.getvalue()


def gps_webp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "olive").save(buffer, "WEBP", exif=_exif(), xmp=_xmp())
    return buffer.getvalue()


def _has_gps(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as img:
        exif = img.getexif()
        return bool(exif.get_ifd(ExifTags.IFD.GPSInfo)) or ExifTags.Base.Make in exif


def _leaks(data: bytes) -> list[bytes]:
    return [m for m in MARKERS if m in data]


@pytest.mark.parametrize("make", [gps_jpeg, gps_png, gps_webp], ids=["jpeg", "png", "webp"])
def test_fixtures_really_carry_the_metadata(make) -> None:
    data = make()
    assert _has_gps(data) and _leaks(data)


@pytest.mark.parametrize("make", [gps_jpeg, gps_png, gps_webp], ids=["jpeg", "png", "webp"])
def test_an_upright_picture_is_stripped_without_re_encoding(make) -> None:
    data = make()
    fitted, _ = fit_image(data, max_bytes=10_000_000, formats=SUPPORTED)
    assert not _has_gps(fitted) and _leaks(fitted) == []
    with Image.open(io.BytesIO(data)) as before, Image.open(io.BytesIO(fitted)) as after:
        assert after.format == before.format
        assert after.tobytes() == before.tobytes()  # the same pixels: no re-encoding


def test_jpeg_strip_keeps_the_scan_bytes_verbatim() -> None:
    data = gps_jpeg()
    stripped = strip_metadata(data, "JPEG")
    assert stripped is not None and len(stripped) < len(data)
    scan = data.index(b"\xff\xda")
    assert stripped.endswith(data[scan:])


def test_a_rotated_photo_is_turned_upright_and_stripped() -> None:
    data = gps_jpeg((400, 300), orientation=6)
    fitted, _ = fit_image(data, max_bytes=10_000_000, formats=SUPPORTED)
    info = inspect_image(fitted)
    assert (info.width, info.height) == (300, 400)
    assert not _has_gps(fitted) and _leaks(fitted) == []


async def test_nothing_of_the_gps_block_reaches_the_provider_or_the_database(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai, db: Database
) -> None:
    eng, rec = engine
    for model, data in (("cogvideox-3", gps_jpeg()), ("vidu2-image", gps_webp())):
        await eng.submit(JobRequest(1, 2, 3, model, Mode.IMAGE, "wave", images=[data]))
    await rec.wait(JobEvent.FINISHED, 2)
    for body in fake_zai.submits:
        uri = body["image_url"][0] if isinstance(body["image_url"], list) else body["image_url"]
        sent = base64.b64decode(uri.split(",", 1)[1])
        assert not _has_gps(sent) and _leaks(sent) == []
    await eng.close()  # the scheduler stops reading before the file is closed and read raw
    if db.backend == "sqlite":
        await db.close()
        raw = b"".join(p.read_bytes() for p in db.path.parent.glob("bot.db*"))
    else:  # the server's files are not ours to read: every stored picture's bytes
        raw = b"".join(bytes(r[0]) for r in await db.fetchall("SELECT data FROM media"))
    assert _leaks(raw) == []
    assert b"PhoneMaker" not in raw


# --- item 21: formats the bot cannot send; animations by their first frame -------------------


def _encoded(image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "navy").save(buffer, image_format, **options)
    return buffer.getvalue()


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (_encoded("TIFF"), "TIFF"),
        (_encoded("PSD") if "PSD" in Image.SAVE else b"8BPS\x00\x01" + bytes(40), "Photoshop"),
        (
            _encoded("JPEG2000") if "JPEG2000" in Image.SAVE else b"\xffO\xffQ" + bytes(40),
            "JPEG 2000",
        ),
        (_encoded("ICO"), "ICO"),
        (HEIC, "HEIC"),
    ],
    ids=["tiff", "psd", "jp2", "ico", "heic"],
)
def test_unsendable_formats_are_named_with_what_to_do(data: bytes, name: str) -> None:
    with pytest.raises(InputError) as caught:
        inspect_image(data)
    message = caught.value.user_message
    assert name in message and "PNG or JPEG" in message


def _animation(image_format: str) -> bytes:
    frames = [Image.new("RGB", (200, 100), color) for color in ("red", "lime", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, image_format, save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", ["GIF", "WEBP", "PNG"])
def test_an_animation_is_used_by_its_first_frame(image_format: str) -> None:
    data = _animation(image_format)
    assert inspect_image(data).animated
    fitted, mime = fit_image(data, max_bytes=10_000_000, formats=frozenset({"PNG", "JPEG"}))
    with Image.open(io.BytesIO(fitted)) as img:
        assert not getattr(img, "is_animated", False)
        red, green, blue = img.convert("RGB").getpixel((100, 50))
        assert red > 200 and green < 60 and blue < 60  # the first frame, red


async def test_the_engine_flags_a_first_frame_only_request(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai
) -> None:
    eng, rec = engine
    _, first = prepare_pictures("vidu2-image", Mode.IMAGE, [_animation("GIF")])
    _, other = prepare_pictures("vidu2-image", Mode.IMAGE, [gps_jpeg()])
    assert first and not other
    await eng.submit(
        JobRequest(1, 2, 3, "vidu2-image", Mode.IMAGE, None, images=[_animation("GIF")])
    )
    await rec.wait(JobEvent.FINISHED)
    assert fake_zai.submits[0]["image_url"].startswith("data:image/png")


# --- item 15: every malformed picture is an InputError ---------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def apng_zero_frames() -> bytes:
    """Like Pillow's apng_syntax_num_frames_zero.png: acTL says 0 frames, then a frame."""
    png = _encoded("PNG")
    actl = _chunk(b"acTL", struct.pack(">II", 0, 0))
    fctl = _chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 64, 48, 0, 0, 1, 1, 0, 0))
    return png[:33] + actl + fctl + png[33:]


def _seeds() -> list[bytes]:
    return [
        apng_zero_frames(),
        _animation("PNG"),
        _animation("GIF"),
        _animation("WEBP"),
        gps_jpeg((64, 48)),
        gps_png(),
        gps_webp(),
        _encoded("BMP"),
        _encoded("JPEG", progressive=True),
    ]


def _mutants(count: int) -> list[bytes]:
    """Seeded byte flips, truncations and splices of well-formed files of every readable kind."""
    rng = random.Random(1015)
    seeds, out = _seeds(), []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(8, len(data))
            data[at] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(16, len(data))]
        out.append(bytes(data))
    return out


def test_every_malformed_picture_is_an_input_error() -> None:
    outcomes = {"accepted": 0, "refused": 0}
    for data in [apng_zero_frames(), *_mutants(600)]:
        try:
            fit_image(data, max_bytes=10_000_000, formats=SUPPORTED)
        except InputError:
            outcomes["refused"] += 1
        else:
            outcomes["accepted"] += 1
    print(f"[pictures] 601 malformed variants: {outcomes}")
    assert outcomes["refused"] > 0
