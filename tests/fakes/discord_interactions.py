"""Builders for INTERACTION_CREATE payloads, shaped the way the Discord client sends them."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .discord_state import (
    DEFAULT_FILESIZE_LIMIT,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    StoredAttachment,
)

if TYPE_CHECKING:
    from .discord import FakeDiscord

OPT_SUBCOMMAND = 1
OPT_GROUP = 2
OPT_STRING = 3
OPT_INTEGER = 4
OPT_BOOLEAN = 5
OPT_USER = 6
OPT_CHANNEL = 7
OPT_ROLE = 8
OPT_MENTIONABLE = 9
OPT_NUMBER = 10
OPT_ATTACHMENT = 11

Resolved = dict[str, dict[str, Any]]


def build_interaction(
    fake: FakeDiscord,
    *,
    itype: int,
    data: dict[str, Any],
    guild: FakeGuild | None,
    channel: FakeChannel,
    user: FakeUser,
    message: FakeMessage | None = None,
) -> FakeInteraction:
    """Build the INTERACTION_CREATE payload and its handle."""
    interaction_id = fake.next_id()
    token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
    payload = _base_payload(fake, interaction_id, token, itype, data, channel)
    if guild is not None:
        _add_guild_context(fake, payload, guild, channel, user)
    else:
        _add_dm_context(fake, payload, user)
    if message is not None:
        payload["message"] = message.payload()
    return FakeInteraction(
        id=interaction_id,
        token=token,
        type=itype,
        guild_id=guild.id if guild else None,
        channel_id=channel.id,
        user=user,
        created_at=fake.now(),
        payload=payload,
        signal=fake.signal,
        source_message=message,
    )


def _base_payload(
    fake: FakeDiscord,
    interaction_id: int,
    token: str,
    itype: int,
    data: dict[str, Any],
    channel: FakeChannel,
) -> dict[str, Any]:
    """Return the fields every interaction carries."""
    return {
        "id": str(interaction_id),
        "application_id": str(fake.application_id),
        "type": itype,
        "data": data,
        "token": token,
        "version": 1,
        "locale": fake.user_locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "channel_id": str(channel.id),
        "channel": channel.payload(),
    }


def _add_guild_context(
    fake: FakeDiscord,
    payload: dict[str, Any],
    guild: FakeGuild,
    channel: FakeChannel,
    user: FakeUser,
) -> None:
    """Add guild, member and permission fields."""
    member = guild.member(user.id)
    if member is None:
        raise ValueError(f"user {user.username!r} is not a member of guild {guild.name!r}")
    user_perms = guild.permissions_in(channel, user.id)
    payload["channel"]["permissions"] = str(user_perms)
    payload.update(
        guild_id=str(guild.id),
        guild={"id": str(guild.id), "locale": guild.locale, "features": []},
        guild_locale=guild.locale,
        member={**member.payload(), "permissions": str(user_perms)},
        app_permissions=str(guild.permissions_in(channel, fake.bot_user.id)),
        authorizing_integration_owners={"0": str(guild.id)},
        context=0,
        attachment_size_limit=guild.filesize_limit,
    )


def _add_dm_context(fake: FakeDiscord, payload: dict[str, Any], user: FakeUser) -> None:
    """Add the fields of an interaction in the bot's DM."""
    payload.update(
        user=user.payload(),
        app_permissions=str(fake.dm_app_permissions),
        authorizing_integration_owners={"0": "0"},
        context=1,
        attachment_size_limit=DEFAULT_FILESIZE_LIMIT,
    )


# slash command options


def _find_option(defs: list[dict[str, Any]], name: str, types: tuple[int, ...]) -> dict[str, Any]:
    """Find an option definition by name and type."""
    for option in defs:
        if option.get("name") == name and option.get("type") in types:
            return option
    known = [o.get("name") for o in defs]
    raise ValueError(f"command has no option/subcommand {name!r} (known: {known})")


def command_options(
    fake: FakeDiscord,
    command: dict[str, Any],
    *,
    guild: FakeGuild | None,
    channel: FakeChannel,
    subcommand: str | None,
    group: str | None,
    values: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], Resolved]:
    """Build ``data.options`` and ``data.resolved`` for a chat-input command."""
    defs = command.get("options") or []
    resolved: Resolved = {}
    if group is not None:
        group_def = _find_option(defs, group, (OPT_GROUP,))
        sub_def = _find_option(group_def.get("options") or [], subcommand or "", (OPT_SUBCOMMAND,))
        inner = _values(fake, sub_def.get("options") or [], values, resolved, guild, channel)
        sub = {"type": OPT_SUBCOMMAND, "name": subcommand, "options": inner}
        return [{"type": OPT_GROUP, "name": group, "options": [sub]}], resolved
    if subcommand is not None:
        sub_def = _find_option(defs, subcommand, (OPT_SUBCOMMAND,))
        inner = _values(fake, sub_def.get("options") or [], values, resolved, guild, channel)
        return [{"type": OPT_SUBCOMMAND, "name": subcommand, "options": inner}], resolved
    return _values(fake, defs, values, resolved, guild, channel), resolved


def _values(
    fake: FakeDiscord,
    defs: list[dict[str, Any]],
    values: Mapping[str, Any],
    resolved: Resolved,
    guild: FakeGuild | None,
    channel: FakeChannel,
) -> list[dict[str, Any]]:
    """Convert user-supplied values into typed option objects (checking what the client checks)."""
    if any(d.get("type") in (OPT_SUBCOMMAND, OPT_GROUP) for d in defs):
        raise ValueError("this command has subcommands: pass subcommand= (and group=)")
    missing = [d["name"] for d in defs if d.get("required") and d["name"] not in values]
    if missing:
        raise ValueError(f"required options missing: {missing}")
    out = []
    for name, value in values.items():
        spec = _find_option(defs, name, tuple(range(3, 12)))
        converted = _convert(fake, spec, value, resolved, guild, channel)
        out.append({"type": spec["type"], "name": name, "value": converted})
    return out


def _convert(
    fake: FakeDiscord,
    spec: dict[str, Any],
    value: Any,
    resolved: Resolved,
    guild: FakeGuild | None,
    channel: FakeChannel,
) -> Any:
    """Convert one option value and register resolved objects."""
    kind = spec["type"]
    if kind == OPT_STRING:
        return _check_string(spec, str(value))
    if kind in (OPT_INTEGER, OPT_NUMBER):
        number = int(value) if kind == OPT_INTEGER else float(value)
        return _check_number(spec, number)
    if kind == OPT_BOOLEAN:
        return bool(value)
    if kind == OPT_ATTACHMENT:
        return _resolve_attachment(value, resolved)
    if kind in (OPT_USER, OPT_MENTIONABLE) and isinstance(value, FakeUser | FakeMember | int):
        return _resolve_user(fake, value, resolved, guild, channel)
    if kind in (OPT_ROLE, OPT_MENTIONABLE) and isinstance(value, FakeRole):
        resolved.setdefault("roles", {})[str(value.id)] = value.payload()
        return str(value.id)
    if kind == OPT_CHANNEL and isinstance(value, FakeChannel):
        return _resolve_channel(fake, value, resolved)
    raise ValueError(f"cannot use {value!r} for option {spec['name']!r} of type {kind}")


def _check_choices(spec: dict[str, Any], value: Any) -> None:
    """Reject values outside the option's choices."""
    choices = spec.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise ValueError(f"{value!r} is not a choice of option {spec['name']!r}")


def _check_string(spec: dict[str, Any], value: str) -> str:
    """Apply choices and min/max length like the Discord client does."""
    _check_choices(spec, value)
    low, high = spec.get("min_length"), spec.get("max_length", 6000)
    if (low is not None and len(value) < low) or len(value) > high:
        raise ValueError(f"length of {spec['name']!r} must be within [{low}, {high}]")
    return value


def _check_number(spec: dict[str, Any], value: float) -> float:
    """Apply choices and min/max value like the Discord client does."""
    _check_choices(spec, value)
    low, high = spec.get("min_value"), spec.get("max_value")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{spec['name']!r} must be within [{low}, {high}]")
    return value


def _resolve_attachment(value: Any, resolved: Resolved) -> str:
    """Register an attachment (dict or StoredAttachment) and return its id."""
    data = value.payload() if isinstance(value, StoredAttachment) else dict(value)
    resolved.setdefault("attachments", {})[str(data["id"])] = data
    return str(data["id"])


def _resolve_user(
    fake: FakeDiscord,
    value: FakeUser | FakeMember | int,
    resolved: Resolved,
    guild: FakeGuild | None,
    channel: FakeChannel,
) -> str:
    """Register a user (and its member data) and return its id."""
    user = value.user if isinstance(value, FakeMember) else value
    user = fake.users[user] if isinstance(user, int) else user
    resolved.setdefault("users", {})[str(user.id)] = user.payload()
    member = guild.member(user.id) if guild else None
    if guild is not None and member is not None:
        perms = str(guild.permissions_in(channel, user.id))
        data = {**member.payload(with_user=False), "permissions": perms}
        resolved.setdefault("members", {})[str(user.id)] = data
    return str(user.id)


def _resolve_channel(fake: FakeDiscord, channel: FakeChannel, resolved: Resolved) -> str:
    """Register a channel and return its id."""
    data = channel.payload()
    guild = fake.guilds.get(channel.guild_id or 0)
    if guild is not None:
        data["permissions"] = str(guild.permissions_in(channel, fake.bot_user.id))
    resolved.setdefault("channels", {})[str(channel.id)] = data
    return str(channel.id)


# components and modals


def find_component(message: FakeMessage, custom_id: str) -> dict[str, Any]:
    """Find a component on a message by custom_id."""
    stack = list(message.components)
    while stack:
        item = stack.pop(0)
        if not isinstance(item, dict):
            continue
        if item.get("custom_id") == custom_id:
            return item
        stack.extend(item.get("components") or [])
        stack.extend(c for c in (item.get("component"), item.get("accessory")) if c)
    raise ValueError(f"message {message.id} has no component with custom_id {custom_id!r}")


def component_data(component: dict[str, Any], values: list[str] | None) -> dict[str, Any]:
    """Build ``data`` for a component interaction."""
    if component.get("disabled"):
        raise ValueError(f"component {component.get('custom_id')!r} is disabled")
    data: dict[str, Any] = {
        "custom_id": component["custom_id"],
        "component_type": component["type"],
    }
    if component["type"] != 2:
        data["values"] = list(values or [])
    if component.get("id") is not None:
        data["id"] = component["id"]
    return data


def modal_submit_data(modal: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Build ``data`` for a modal submit, mirroring the modal's layout."""
    unknown = set(values) - set(_input_ids(modal.get("components") or []))
    if unknown:
        raise ValueError(f"modal {modal.get('custom_id')!r} has no inputs {sorted(unknown)}")
    components = [_mirror(c, values) for c in modal.get("components") or []]
    return {"custom_id": modal["custom_id"], "components": components}


def _input_ids(components: list[dict[str, Any]]) -> list[str]:
    """Return every custom_id in a modal layout."""
    ids = []
    for comp in components:
        if comp.get("custom_id"):
            ids.append(comp["custom_id"])
        ids.extend(_input_ids(comp.get("components") or []))
        if comp.get("component"):
            ids.extend(_input_ids([comp["component"]]))
    return ids


def _mirror(comp: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Mirror one modal component into its submitted form."""
    kind = comp.get("type")
    out: dict[str, Any] = {"type": kind}
    if comp.get("id") is not None:
        out["id"] = comp["id"]
    if kind == 1:
        out["components"] = [_mirror(c, values) for c in comp.get("components") or []]
    elif kind == 18:
        out["component"] = _mirror(comp["component"], values)
    elif kind == 4:
        out.update(custom_id=comp["custom_id"], value=_text_value(comp, values))
    elif comp.get("custom_id"):
        picked = values.get(comp["custom_id"], [])
        out.update(custom_id=comp["custom_id"], values=list(picked))
    return out


def _text_value(comp: dict[str, Any], values: Mapping[str, Any]) -> str:
    """Return a text input's submitted value, enforcing required/min/max like the client."""
    value = str(values.get(comp["custom_id"], ""))
    if comp.get("required", True) and not value:
        raise ValueError(f"text input {comp['custom_id']!r} is required")
    low, high = comp.get("min_length") or 0, comp.get("max_length") or 4000
    if value and not low <= len(value) <= high:
        raise ValueError(f"text input {comp['custom_id']!r} length must be within [{low}, {high}]")
    return value
