"""Message bodies: JSON / multipart parsing, attachments, creation and edits."""

from __future__ import annotations

import io
import json
import mimetypes
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .discord_state import (
    MESSAGE_FLAG_COMPONENTS_V2,
    MESSAGE_FLAG_SUPPRESS_EMBEDS,
    FakeMessage,
    FakeUser,
    MessageEdit,
    StoredAttachment,
)
from .discord_validation import (
    MAX_FILES,
    DiscordError,
    FormErrors,
    empty_message,
    is_empty_message,
    message_limit_errors,
)

if TYPE_CHECKING:
    from .discord import FakeDiscord

_FILES_FIELD = re.compile(r"^files\[(\d+)\]$")
_MENTION = re.compile(r"<@!?(\d+)>")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
EDITABLE_FLAGS = MESSAGE_FLAG_SUPPRESS_EMBEDS | MESSAGE_FLAG_COMPONENTS_V2

ARRIVED_AT = web.RequestKey("fake_discord_arrived_at", float)
PARSED_BODY = web.RequestKey("fake_discord_body", object)


@dataclass
class Upload:
    """One ``files[n]`` part of a multipart request."""

    index: int
    filename: str
    data: bytes


@dataclass
class Body:
    """A parsed request body: the JSON payload plus any uploaded files."""

    payload: Any
    uploads: list[Upload] = field(default_factory=list)

    @property
    def upload_size(self) -> int:
        """Return the total number of uploaded bytes."""
        return sum(len(u.data) for u in self.uploads)

    def message(self) -> dict[str, Any]:
        """Return the payload as a dict (or raise 50035 if it is not an object)."""
        if isinstance(self.payload, dict):
            return self.payload
        raise DiscordError(400, 50035, "Invalid Form Body", errors={})


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body, answering 50109 like Discord when it is malformed."""
    try:
        return json.loads(raw) if raw else {}
    except ValueError as exc:
        raise DiscordError(400, 50109, "The request body contains invalid JSON.") from exc


async def read_body(request: web.Request) -> Body:
    """Read a JSON or multipart/form-data request body (kept on the request for error records)."""
    if request.content_type.startswith("multipart/"):
        body = await _read_multipart(request)
    else:
        body = Body(parse_json(await request.read()))
    request[PARSED_BODY] = body.payload
    return body


async def _read_multipart(request: web.Request) -> Body:
    """Read ``payload_json`` and ``files[n]`` parts."""
    body = Body({})
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        if name == "payload_json":
            body.payload = parse_json(await part.read(decode=True))
            continue
        match = _FILES_FIELD.match(name)
        if match or part.filename:
            index = int(match.group(1)) if match else len(body.uploads)
            data = bytes(await part.read(decode=True))
            body.uploads.append(Upload(index, part.filename or f"file{index}", data))
    if len(body.uploads) > MAX_FILES:
        errors = FormErrors()
        errors.add(["files"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FILES} or fewer in length.")
        errors.raise_if_any()
    return body


def check_upload_size(body: Body, limit: int) -> None:
    """Answer 413 / 40005 if the uploads exceed the size limit."""
    if body.upload_size > limit:
        raise DiscordError(413, 40005, "Request entity too large")


def sanitize_filename(name: str) -> str:
    """Mimic Discord's filename clean-up (spaces become underscores, odd characters vanish)."""
    cleaned = _UNSAFE_FILENAME_CHARS.sub("", re.sub(r"\s+", "_", name.strip()))
    return cleaned or "unknown"


def guess_content_type(filename: str) -> str | None:
    """Guess the content type from the extension, as Discord does."""
    guessed = mimetypes.guess_type(filename)[0]
    if guessed and guessed.startswith("text/"):
        return f"{guessed}; charset=utf-8"
    return guessed


def image_size(data: bytes, content_type: str | None) -> tuple[int, int] | None:
    """Return (width, height) of an image, if Pillow can read it."""
    if not content_type or not content_type.startswith("image/"):
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # not an image Pillow understands: no dimensions
        return None


def make_attachment(
    fake: FakeDiscord,
    channel_id: int,
    filename: str,
    data: bytes,
    content_type: str | None = None,
    description: str | None = None,
) -> StoredAttachment:
    """Create an attachment object served by the fake CDN."""
    attachment_id = fake.next_id()
    name = sanitize_filename(filename)
    ctype = content_type or guess_content_type(name)
    url, proxy_url = fake.cdn_urls(channel_id, attachment_id, name)
    size = image_size(data, ctype)
    stored = StoredAttachment(
        id=attachment_id,
        filename=name,
        data=data,
        content_type=ctype,
        url=url,
        proxy_url=proxy_url,
        description=description,
        width=size[0] if size else None,
        height=size[1] if size else None,
    )
    fake.cdn[attachment_id] = stored
    return stored


def resolve_attachments(
    fake: FakeDiscord,
    channel_id: int,
    payload: dict[str, Any],
    uploads: list[Upload],
    existing: list[StoredAttachment],
) -> list[StoredAttachment]:
    """Work out a message's attachments from ``attachments`` entries, uploads and kept files."""
    entries = payload.get("attachments")
    if entries is None:
        added = [make_attachment(fake, channel_id, u.filename, u.data) for u in uploads]
        return [*existing, *added]
    by_index = {u.index: u for u in uploads}
    old = {str(a.id): a for a in existing}
    result: list[StoredAttachment] = []
    used: set[int] = set()
    errors = FormErrors()
    for pos, entry in enumerate(entries):
        key = str(entry.get("id"))
        if key in old:
            result.append(old[key])
            continue
        upload = by_index.get(int(key)) if key.isdigit() else None
        if upload is None:
            errors.add(["attachments", pos, "id"], "ATTACHMENT_NOT_FOUND", "Unknown attachment")
            continue
        used.add(upload.index)
        name = entry.get("filename") or upload.filename
        desc = entry.get("description")
        result.append(make_attachment(fake, channel_id, name, upload.data, description=desc))
    errors.raise_if_any()
    rest = [u for u in uploads if u.index not in used]
    return [*result, *(make_attachment(fake, channel_id, u.filename, u.data) for u in rest)]


def mentioned_users(
    fake: FakeDiscord, content: str, allowed: dict[str, Any] | None
) -> list[FakeUser]:
    """Return users pinged by ``<@id>`` in content, honouring allowed_mentions."""
    ids = [int(m) for m in _MENTION.findall(content or "")]
    if allowed is not None and "users" not in (allowed.get("parse") or []):
        permitted = {int(u) for u in allowed.get("users") or []}
        ids = [i for i in ids if i in permitted]
    seen: dict[int, FakeUser] = {}
    for user_id in ids:
        user = fake.users.get(user_id)
        if user is not None:
            seen.setdefault(user_id, user)
    return list(seen.values())


def number_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assign Discord's sequential component ``id`` where the sender left it out."""
    counter = [0]

    def visit(items: list[Any]) -> None:
        """Number components depth-first."""
        for item in items:
            if not isinstance(item, dict):
                continue
            counter[0] += 1
            item.setdefault("id", counter[0])
            visit(item.get("components") or [])
            visit([c for c in (item.get("component"), item.get("accessory")) if c])

    copied = json.loads(json.dumps(components))
    visit(copied)
    return copied


def validate_message(payload: dict[str, Any], body: Body, errors: FormErrors | None = None) -> None:
    """Apply the message limits and the 'empty message' rule to a new message."""
    message_limit_errors(payload, errors).raise_if_any()
    if is_empty_message(payload, len(body.uploads)):
        raise empty_message()


def new_message(
    fake: FakeDiscord,
    *,
    channel_id: int,
    guild_id: int | None,
    author: FakeUser,
    body: Body,
    **extra: Any,
) -> FakeMessage:
    """Build (but do not store) a message from a validated body."""
    payload = body.message()
    allowed = payload.get("allowed_mentions")
    content = payload.get("content") or ""
    message = FakeMessage(
        id=fake.next_id(),
        channel_id=channel_id,
        guild_id=guild_id,
        author=author,
        created_at=fake.now(),
        content=content,
        embeds=list(payload.get("embeds") or []),
        components=number_components(payload.get("components") or []),
        flags=int(payload.get("flags") or 0) & EDITABLE_FLAGS,
        tts=bool(payload.get("tts")),
        nonce=payload.get("nonce"),
        allowed_mentions=allowed,
        mentions=mentioned_users(fake, content, allowed),
        **extra,
    )
    message.files = resolve_attachments(fake, channel_id, payload, body.uploads, [])
    return message


def apply_edit(fake: FakeDiscord, message: FakeMessage, body: Body) -> None:
    """Apply an edit (PATCH / UPDATE_MESSAGE) to a message, rejecting edits that empty it."""
    payload = body.message()
    message_limit_errors(payload).raise_if_any()
    content = (payload.get("content") or "") if "content" in payload else message.content
    embeds = list(payload.get("embeds") or []) if "embeds" in payload else message.embeds
    components = message.components
    if "components" in payload:
        components = number_components(payload.get("components") or [])
    files = message.files
    if "attachments" in payload or body.uploads:
        files = resolve_attachments(fake, message.channel_id, payload, body.uploads, message.files)
    state = {"content": content, "embeds": embeds, "components": components}
    if is_empty_message(state, len(files)):
        raise empty_message()
    message.edits.append(MessageEdit(time.monotonic(), payload, message.content))
    message.content, message.embeds, message.components, message.files = (
        content,
        embeds,
        components,
        files,
    )
    if "flags" in payload:
        flags = int(payload.get("flags") or 0) & EDITABLE_FLAGS
        message.flags = (message.flags & ~EDITABLE_FLAGS) | flags
    if "allowed_mentions" in payload:
        message.allowed_mentions = payload["allowed_mentions"]
    message.mentions = mentioned_users(fake, message.content, message.allowed_mentions)
    message.edited_at = fake.now()
