"""Inspect and normalise user pictures before they are sent to the video service."""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from bot.errors import InputError

SUPPORTED = frozenset({"PNG", "JPEG", "WEBP"})

# 40 MP is above every phone's default output (12-24 MP) and most cameras, yet decoded as
# RGBA it is "only" 160 MB per request. Pillow's own guard starts at ~89 MP (and refuses
# outright at twice that), far too generous for a bot that decodes several uploads at once;
# video models downscale to at most ~4K anyway, so bigger pictures would only cost memory.
MAX_PIXELS = 40_000_000

# Pillow's default, pinned on purpose: a truncated upload must be refused, not padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Formats Pillow may even try to parse. A short list limits the attack surface to decoders
# in everyday use (EPS would run Ghostscript; libtiff has a long CVE record). JPEG also
# opens multi-picture JPEGs ("MPO"); AVIF only exists when Pillow was built with libavif.
Image.init()
_READABLE = tuple(f for f in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "AVIF") if f in Image.OPEN)
# What Pillow raises on malformed input (IndexError, KeyError, TypeError... come from plugins
# reading inconsistent headers or frame tables: an APNG announcing zero frames, say).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    RuntimeError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
)
_LOSSY_SOURCES = frozenset({"JPEG", "MPO", "WEBP", "AVIF"})
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_QUALITIES = (90, 75, 60)
_SCALE_STEP = 0.8
MIN_SHORT_SIDE = 256  # below this a picture is too small to guide a video model

# Formats members attach that the bot refuses by name (their decoders are a large attack
# surface, and the video service takes none of them): magic bytes → name. Sniffed, not parsed.
_UNSENDABLE: tuple[tuple[int, bytes, str], ...] = (
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"8BPS", "Photoshop (PSD)"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xffO\xffQ", "JPEG 2000"),
    (0, b"\x00\x00\x01\x00", "icon (ICO)"),
    (0, b"\x00\x00\x02\x00", "cursor (CUR)"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_MB = 1024 * 1024


@dataclass(frozen=True)
class ImageInfo:
    """What a picture is, as displayed (EXIF orientation applied to width and height)."""

    width: int
    height: int
    format: str
    size_bytes: int
    animated: bool = False  # an animation: its first frame is what gets used

    @property
    def aspect(self) -> float:
        """Width divided by height."""
        return self.width / self.height


def format_size(size_bytes: int) -> str:
    """A byte count the way Discord shows limits ("25 MB", "500 KB")."""
    if size_bytes >= _MB:
        return f"{size_bytes / _MB:.3g} MB"
    if size_bytes >= 1024:
        return f"{size_bytes / 1024:.3g} KB"
    return f"{size_bytes} bytes"


def inspect_image(data: bytes) -> ImageInfo:
    """Sniff and fully decode `data`; raise InputError unless it is one usable still picture."""
    return _inspect(data)[0]


def fit_image(data: bytes, *, max_bytes: int, formats: frozenset[str]) -> tuple[bytes, str]:
    """Return `data` (or a re-encoded copy) and its MIME type, in `formats` and ≤ `max_bytes`."""
    targets = formats & SUPPORTED
    if not targets:
        raise ValueError(f"fit_image can only encode {sorted(SUPPORTED)}, got {sorted(formats)}")
    info, orientation = _inspect(data)
    # Metadata (EXIF GPS, XMP, comments) never leaves: dropped losslessly when the picture can
    # be kept as it is. A rotated photo is re-encoded upright (the service may ignore the EXIF
    # tag), an animation as its first frame.
    if info.format in formats and orientation == 1 and not info.animated:
        stripped = strip_metadata(data, info.format)
        if stripped is not None and len(stripped) <= max_bytes:
            return stripped, _MIME.get(info.format) or Image.MIME[info.format]
    try:
        with _open(data) as img:
            picture = _prepare(img)
    except _DECODE_ERRORS:
        raise _damaged() from None
    for encoded, image_format in _candidates(picture, info.format, targets):
        if len(encoded) <= max_bytes:
            return encoded, _MIME[image_format]
    raise InputError("image.too_large", limit=format_size(max_bytes))


def to_data_uri(data: bytes, mime: str) -> str:
    """Encode bytes as a `data:` URI, as the video API accepts inline pictures."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _inspect(data: bytes) -> tuple[ImageInfo, int]:
    """Validate `data` fully and return its info plus its EXIF orientation."""
    if not data:
        raise InputError("image.empty")
    with _open(data) as img:
        image_format = str(img.format)
        width, height = img.size
        animated = _is_animated(img)
        orientation = _orientation(img)
    _decode_fully(data)
    if orientation in (5, 6, 7, 8):  # turned a quarter turn when displayed
        width, height = height, width
    return ImageInfo(width, height, image_format, len(data), animated), orientation


def _open(data: bytes) -> Image.Image:
    """Open (header only) with our format list and pixel cap, mapping failures to InputError."""
    try:
        img = Image.open(io.BytesIO(data), formats=_READABLE)
    except UnidentifiedImageError:
        raise _unidentified(data) from None
    # The warning is only an exception when someone turned warnings into errors; MAX_PIXELS
    # is below Pillow's warning threshold, so our own check below refuses those images anyway.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except _DECODE_ERRORS:  # what Pillow plugins raise on hostile headers
        raise _damaged() from None
    if img.width * img.height > MAX_PIXELS:
        img.close()
        raise _too_many_pixels()
    return img


def _is_animated(img: Image.Image) -> bool:
    """Whether it is an animation (GIF, WebP, APNG); multi-picture JPEGs (MPO) hold depth maps
    or previews, not motion, and count as stills."""
    if img.format == "MPO":
        return False
    try:
        return bool(getattr(img, "is_animated", False))
    except _DECODE_ERRORS:  # seeking to frame 2 of a broken file
        raise _damaged() from None


def _unidentified(data: bytes) -> InputError:
    """The refusal of a file Pillow may not open: name the format when it is a known one."""
    name = next((n for at, magic, n in _UNSENDABLE if data[at : at + len(magic)] == magic), None)
    if name is None and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        name = "HEIC/HEIF"
    if name is None:
        return InputError("image.not_picture")
    return InputError("image.unsupported", format=name)


def _decode_fully(data: bytes) -> None:
    """Decode every pixel so truncated or corrupt files are caught now, not by the service."""
    try:
        with Image.open(io.BytesIO(data), formats=_READABLE) as img:
            # For PNG, verify() checks every chunk's CRC, catching damage zlib alone may miss.
            img.verify()
        with Image.open(io.BytesIO(data), formats=_READABLE) as img:
            img.load()
    except _DECODE_ERRORS:
        raise _damaged() from None


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright), tolerating broken EXIF blocks."""
    try:
        return int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # an unreadable EXIF block should not sink a readable picture
        return 1


def _prepare(img: Image.Image) -> Image.Image:
    """Decode (the first frame), turn upright, forget metadata, convert to a mode every
    encoder accepts."""
    picture = ImageOps.exif_transpose(img)
    # Pillow re-writes some of `info` on save (XMP in JPEG, for one): keep only what pixels need.
    picture.info = {k: v for k, v in picture.info.items() if k in ("icc_profile", "transparency")}
    if picture.mode == "CMYK":
        picture = picture.convert("RGB")
        picture.info.pop("icc_profile", None)  # a CMYK profile does not describe RGB pixels
    elif picture.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):  # modes PNG can store
        picture = picture.convert("RGBA" if picture.has_transparency_data else "RGB")
    return picture


def _candidates(
    picture: Image.Image, source_format: str, targets: frozenset[str]
) -> Iterator[tuple[bytes, str]]:
    """Encodings to try, best quality first, ending at the smallest acceptable size."""
    lossy = next((f for f in ("JPEG", "WEBP") if f in targets), None)
    sizes = _sizes(picture.width, picture.height)
    if lossy is None:  # PNG only: shrinking is the one lever left
        for size in sizes:
            yield _encode(_resize(picture, size), "PNG", None), "PNG"
        return
    # Transparency and drawings (GIF, BMP...) deserve a lossless try before JPEG.
    if "PNG" in targets and (picture.has_transparency_data or source_format not in _LOSSY_SOURCES):
        yield _encode(picture, "PNG", None), "PNG"
    for size in sizes:
        flat = _flatten(_resize(picture, size))
        for quality in _QUALITIES:
            yield _encode(flat, lossy, quality), lossy


def _resize(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to `size` (a no-op at full size); LANCZOS keeps downscaled detail crisp."""
    if size == picture.size:
        return picture
    if picture.mode in ("1", "P"):  # Pillow resizes these with NEAREST: jagged edges
        picture = picture.convert("RGBA" if picture.has_transparency_data else "RGB")
    return picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _sizes(width: int, height: int) -> Iterator[tuple[int, int]]:
    """The full size, then ~0.8 steps down while the short side stays ≥ MIN_SHORT_SIDE."""
    yield width, height
    scale = _SCALE_STEP
    while min(width, height) * scale >= MIN_SHORT_SIDE:
        yield max(1, round(width * scale)), max(1, round(height * scale))
        scale *= _SCALE_STEP


def _flatten(picture: Image.Image) -> Image.Image:
    """Drop transparency onto white (JPEG has no alpha) and reduce to RGB or greyscale."""
    if picture.has_transparency_data:
        rgba = picture.convert("RGBA")
        background = Image.new("RGBA", rgba.size, "white")
        return Image.alpha_composite(background, rgba).convert("RGB")
    return picture.convert("L" if picture.mode in ("1", "L") else "RGB")


def _encode(picture: Image.Image, image_format: str, quality: int | None) -> bytes:
    """Save without EXIF (it may hold GPS data) but with the colour profile."""
    buffer = io.BytesIO()
    options: dict[str, object] = {"icc_profile": picture.info.get("icc_profile")}
    if quality is None:
        options["optimize"] = True
    else:
        options["quality"] = quality
    picture.save(buffer, image_format, **options)
    return buffer.getvalue()


def _too_many_pixels() -> InputError:
    """The error for pictures above MAX_PIXELS."""
    return InputError("image.too_many_pixels", limit=MAX_PIXELS // 1_000_000)


def _damaged() -> InputError:
    """The error for truncated or corrupt pictures."""
    return InputError("image.damaged")


# --- lossless metadata stripping ------------------------------------------------------------

# JPEG segments kept: JFIF/JFXX (APP0), the ICC profile (APP2 "ICC_PROFILE"), Adobe's colour
# transform (APP14 "Adobe", needed to decode CMYK/YCCK). Everything else before the scan goes:
# EXIF and XMP (APP1), IPTC/Photoshop (APP13), comments (COM), vendor blocks.
_JPEG_KEEP = {0xE0: b"", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}
# PNG chunks kept: the critical ones and those that change how pixels look. Dropped: eXIf,
# tEXt, zTXt, iTXt, tIME and private chunks.
_PNG_KEEP = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT",
     b"pHYs", b"bKGD", b"cICP", b"mDCV", b"cLLI"}
)  # fmt: skip
_WEBP_DROP = frozenset({b"EXIF", b"XMP "})
_VP8X_METADATA_FLAGS = 0x08 | 0x04  # EXIF and XMP present


def strip_metadata(data: bytes, image_format: str) -> bytes | None:
    """`data` without metadata, pixels untouched; None if the file's layout is unexpected
    (then the caller re-encodes, which drops metadata too)."""
    strip = {"JPEG": _strip_jpeg, "PNG": _strip_png, "WEBP": _strip_webp}.get(image_format)
    try:
        stripped = strip(data) if strip is not None else None
    except (IndexError, ValueError, struct.error):
        return None
    return data if stripped == data else stripped  # nothing to drop: the very same bytes


def _strip_jpeg(data: bytes) -> bytes | None:
    """Copy the JPEG's segments up to the scan, minus metadata; the scan data as it is."""
    if data[:2] != b"\xff\xd8":
        return None
    out, i = [data[:2]], 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data and trailers
            out.append(data[i:])
            return b"".join(out)
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        segment = data[i:end]
        keep = _JPEG_KEEP.get(marker)
        is_metadata = 0xE0 <= marker <= 0xEF or marker == 0xFE
        if not is_metadata or (keep is not None and segment[4:].startswith(keep)):
            out.append(segment)
        i = end
    return None


def _strip_png(data: bytes) -> bytes | None:
    """The PNG's chunks minus ancillary ones that describe rather than draw."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    out, i = [data[:8]], 8
    while i + 12 <= len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        end = i + 12 + length
        if kind in _PNG_KEEP:
            out.append(data[i:end])
        if kind == b"IEND":
            return b"".join(out)
        i = end
    return None


def _strip_webp(data: bytes) -> bytes | None:
    """The WebP's RIFF chunks minus EXIF and XMP, with VP8X's flags and the RIFF size fixed."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    out, i = [], 12
    while i + 8 <= len(data):
        kind = data[i : i + 4]
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        end = i + 8 + size + (size & 1)
        chunk = data[i:end]
        if kind == b"VP8X":
            flags = chunk[8] & ~_VP8X_METADATA_FLAGS
            chunk = chunk[:8] + bytes([flags]) + chunk[9:]
        if kind not in _WEBP_DROP:
            out.append(chunk)
        i = end
    body = b"WEBP" + b"".join(out)
    return b"RIFF" + len(body).to_bytes(4, "little") + body
