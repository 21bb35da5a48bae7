"""Request-body validation: Discord's OpenAPI schemas plus the limits the schemas leave out."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .discord_state import MESSAGE_FLAG_COMPONENTS_V2

SPEC_PATH = Path(__file__).with_name("discord_openapi.json")
SPEC_URI = "urn:discord:openapi"

# operation name -> (OpenAPI path, method)
OPERATIONS: dict[str, tuple[str, str]] = {
    "create_message": ("/channels/{channel_id}/messages", "post"),
    "update_message": ("/channels/{channel_id}/messages/{message_id}", "patch"),
    "interaction_callback": ("/interactions/{interaction_id}/{interaction_token}/callback", "post"),
    "execute_webhook": ("/webhooks/{webhook_id}/{webhook_token}", "post"),
    "update_webhook_message": (
        "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
        "patch",
    ),
    "update_original_webhook_message": (
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        "patch",
    ),
    "bulk_set_commands": ("/applications/{application_id}/commands", "put"),
    "bulk_set_guild_commands": ("/applications/{application_id}/guilds/{guild_id}/commands", "put"),
}

CONTENT_LIMIT = 2000
EMBED_TOTAL_LIMIT = 6000
CUSTOM_ID_LIMIT = 100
MAX_FILES = 10
MAX_ACTION_ROWS = 5

_VALIDATORS: dict[str, Draft202012Validator] = {}

_KEYWORD_CODES: dict[str, str] = {
    "maxLength": "BASE_TYPE_MAX_LENGTH",
    "maxItems": "BASE_TYPE_MAX_LENGTH",
    "minLength": "BASE_TYPE_MIN_LENGTH",
    "minItems": "BASE_TYPE_MIN_LENGTH",
    "required": "BASE_TYPE_REQUIRED",
    "type": "BASE_TYPE_BAD_TYPE",
    "enum": "BASE_TYPE_CHOICES",
    "const": "BASE_TYPE_CHOICES",
    "pattern": "STRING_TYPE_REGEX",
    "maximum": "NUMBER_TYPE_MAX",
    "minimum": "NUMBER_TYPE_MIN",
}


class DiscordError(Exception):
    """An error answer in Discord's JSON shape."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Keep the HTTP status, the Discord error code and the body parts."""
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """Return the JSON body Discord would send."""
        if self.extra is not None:
            return dict(self.extra)
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


class FormErrors:
    """Accumulates nested Discord form errors: {"a": {"0": {"_errors": [...]}}}."""

    def __init__(self) -> None:
        """Start with no errors."""
        self.tree: dict[str, Any] = {}

    def __bool__(self) -> bool:
        """Return True if any error was added."""
        return bool(self.tree)

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        """Record one error at ``path``."""
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def raise_if_any(self) -> None:
        """Raise the 50035 error if anything was recorded."""
        if self.tree:
            raise invalid_form_body(self.tree)


def invalid_form_body(errors: dict[str, Any]) -> DiscordError:
    """Build the 400 50035 'Invalid Form Body' error."""
    return DiscordError(400, 50035, "Invalid Form Body", errors=errors)


def empty_message() -> DiscordError:
    """Build the 400 50006 error for a message with nothing in it."""
    return DiscordError(400, 50006, "Cannot send an empty message")


@functools.cache
def _document() -> dict[str, Any]:
    """Load the OpenAPI document once, with Discord's real snowflake leniency applied."""
    doc = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    schemas = doc["components"]["schemas"]
    # The spec types snowflakes as strings only; the real API (and discord.py) also uses integers.
    strict = copy.deepcopy(schemas["SnowflakeType"])
    schemas["SnowflakeType"] = {"anyOf": [strict, {"type": "integer", "minimum": 0}]}
    return doc


@functools.cache
def _registry() -> Registry:
    """Return a registry holding the whole document under SPEC_URI."""
    resource = Resource.from_contents(_document(), default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


def _pointer(*parts: str) -> str:
    """Build a URI-safe JSON pointer fragment."""
    escaped = "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + quote(escaped, safe="/~@")


def validator(operation: str) -> Draft202012Validator:
    """Return the (cached) request-body validator for an operation."""
    cached = _VALIDATORS.get(operation)
    if cached is None:
        path, method = OPERATIONS[operation]
        ref = SPEC_URI + _pointer(
            "paths", path, method, "requestBody", "content", "application/json", "schema"
        )
        cached = Draft202012Validator({"$ref": ref}, registry=_registry())
        _VALIDATORS[operation] = cached
    return cached


def precompile() -> None:
    """Build every validator now (first use otherwise pays the cost)."""
    for operation in OPERATIONS:
        validator(operation)


def schema_errors(operation: str, body: Any) -> FormErrors:
    """Validate ``body`` against the operation's schema; return Discord-style errors."""
    errors = FormErrors()
    for error in validator(operation).iter_errors(body):
        for leaf in _leaves(error):
            errors.add(*_describe(leaf))
    return errors


def _leaves(error: ValidationError) -> list[ValidationError]:
    """Descend anyOf/oneOf failures into the branch the sender evidently meant."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    depth = len(error.absolute_path)
    meant = [errs for errs in branches.values() if not any(_mismatch(e, depth) for e in errs)]
    if not meant:
        return [best_match([error])]
    best = max(meant, key=lambda errs: (max(len(e.absolute_path) for e in errs), -len(errs)))
    return [leaf for sub in best for leaf in _leaves(sub)]


def _mismatch(error: ValidationError, depth: int) -> bool:
    """Return True if the error shows the branch is a different kind of object altogether."""
    rel = list(error.absolute_path)[depth:]
    if error.validator == "type" and not rel:
        return True
    return error.validator in ("enum", "const") and rel == ["type"]


def _describe(error: ValidationError) -> tuple[list[str | int], str, str]:
    """Turn a jsonschema error into (path, code, message)."""
    path: list[str | int] = list(error.absolute_path)
    keyword = str(error.validator)
    code = _KEYWORD_CODES.get(keyword, "BASE_TYPE_INVALID")
    if keyword in ("maxLength", "maxItems"):
        return path, code, f"Must be {error.validator_value} or fewer in length."
    if keyword in ("minLength", "minItems"):
        return path, code, f"Must be {error.validator_value} or more in length."
    if keyword == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        return [*path, *missing[:1]], code, "This field is required"
    return path, code, error.message[:300]


def message_limit_errors(payload: dict[str, Any], errors: FormErrors | None = None) -> FormErrors:
    """Check the message limits the schema does not express (content, embeds, components)."""
    errors = errors if errors is not None else FormErrors()
    content = payload.get("content")
    if isinstance(content, str) and len(content) > CONTENT_LIMIT:
        errors.add(
            ["content"], "BASE_TYPE_MAX_LENGTH", f"Must be {CONTENT_LIMIT} or fewer in length."
        )
    _check_embeds(payload.get("embeds") or [], errors)
    _check_components(payload, errors)
    return errors


def _check_embeds(embeds: list[Any], errors: FormErrors) -> None:
    """Check per-embed field limits and the 6000-character total."""
    if len(embeds) > 10:
        errors.add(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for index, embed in enumerate(embeds):
        if isinstance(embed, dict):
            total += _check_embed(index, embed, errors)
    if total > EMBED_TOTAL_LIMIT:
        errors.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def _text(value: Any) -> str:
    """Return ``value`` if it is a string, else ''."""
    return value if isinstance(value, str) else ""


def _limit(errors: FormErrors, path: list[str | int], value: str, limit: int) -> int:
    """Record a max-length error if needed; return the length."""
    if len(value) > limit:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    return len(value)


def _check_embed(index: int, embed: dict[str, Any], errors: FormErrors) -> int:
    """Check one embed; return its character count towards the total."""
    base: list[str | int] = ["embeds", index]
    size = _limit(errors, [*base, "title"], _text(embed.get("title")), 256)
    size += _limit(errors, [*base, "description"], _text(embed.get("description")), 4096)
    footer = embed.get("footer") or {}
    size += _limit(errors, [*base, "footer", "text"], _text(footer.get("text")), 2048)
    author = embed.get("author") or {}
    size += _limit(errors, [*base, "author", "name"], _text(author.get("name")), 256)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        errors.add([*base, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for i, fld in enumerate(fields):
        size += _check_field([*base, "fields", i], fld, errors)
    return size


def _check_field(path: list[str | int], fld: Any, errors: FormErrors) -> int:
    """Check one embed field (name ≤ 256, value ≤ 1024, neither empty)."""
    name, value = _text(fld.get("name")), _text(fld.get("value"))
    for key, text in (("name", name), ("value", value)):
        if not text.strip():
            errors.add([*path, key], "BASE_TYPE_REQUIRED", "This field is required")
    return _limit(errors, [*path, "name"], name, 256) + _limit(
        errors, [*path, "value"], value, 1024
    )


def _walk_components(
    components: list[Any], path: list[str | int]
) -> Iterator[tuple[list[str | int], dict[str, Any]]]:
    """Yield (path, component) for every component, nested ones included."""
    for index, component in enumerate(components):
        if not isinstance(component, dict):
            continue
        here = [*path, index]
        yield here, component
        yield from _walk_components(component.get("components") or [], [*here, "components"])
        for key in ("component", "accessory"):
            child = component.get(key)
            if isinstance(child, dict):
                yield from _walk_components([child], [*here, key])


def _check_components(payload: dict[str, Any], errors: FormErrors) -> None:
    """Check custom_id length and uniqueness, and the legacy/V2 layout rules."""
    components = payload.get("components") or []
    seen: set[str] = set()
    for path, component in _walk_components(components, ["components"]):
        custom_id = component.get("custom_id")
        if not isinstance(custom_id, str):
            continue
        _limit(errors, [*path, "custom_id"], custom_id, CUSTOM_ID_LIMIT)
        if custom_id in seen:
            errors.add(
                [*path, "custom_id"],
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        seen.add(custom_id)
    _check_layout(payload, components, errors)


def _check_layout(payload: dict[str, Any], components: list[Any], errors: FormErrors) -> None:
    """Enforce ≤5 action rows (legacy) or no content/embeds (components V2)."""
    flags = payload.get("flags") or 0
    if isinstance(flags, int) and flags & MESSAGE_FLAG_COMPONENTS_V2:
        for key in ("content", "embeds"):
            if payload.get(key):
                errors.add(
                    [key],
                    "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                    "The 'content' and 'embeds' fields cannot be used with IS_COMPONENTS_V2",
                )
        return
    if len(components) > MAX_ACTION_ROWS:
        errors.add(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    for index, row in enumerate(components):
        if isinstance(row, dict) and row.get("type") != 1:
            errors.add(
                ["components", index, "type"],
                "COMPONENT_INVALID_TYPE",
                "Only action rows are allowed at the top level without IS_COMPONENTS_V2",
            )


def is_empty_message(payload: dict[str, Any], file_count: int) -> bool:
    """Return True if the message would have no content, embeds, components, files or stickers."""
    content = payload.get("content")
    has_text = isinstance(content, str) and content.strip() != ""
    keys = ("embeds", "components", "sticker_ids", "poll", "attachments")
    return not has_text and not file_count and not any(payload.get(k) for k in keys)
