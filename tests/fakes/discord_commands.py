"""Application commands: bulk-overwrite storage, Discord's extra rules, and who may invoke them."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import regex

from .discord_state import FakeChannel, FakeGuild, FakeUser, Perm
from .discord_validation import FormErrors

# Discord's rule for chat-input names and their localizations (the regex module: scripts).
_COMMAND_NAME = regex.compile(r"^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$")
_OPENAPI = Path(__file__).with_name("discord_openapi.json")


@cache
def _locales() -> frozenset[str]:
    """Discord's locale codes (AvailableLocalesEnum of the OpenAPI description)."""
    schemas = json.loads(_OPENAPI.read_text())["components"]["schemas"]
    return frozenset(o["const"] for o in schemas["AvailableLocalesEnum"]["oneOf"])


Command = dict[str, Any]


class CommandStore:
    """The application's global and per-guild command lists, as Discord stores them."""

    def __init__(self, next_id: Callable[[], int], application_id: int) -> None:
        """Start with no commands."""
        self._next_id = next_id
        self._application_id = application_id
        self.global_commands: list[Command] = []
        self.guild_commands: dict[int, list[Command]] = {}
        self.sync_calls = 0

    def listing(self, guild_id: int | None) -> list[Command]:
        """Return the global (None) or guild command list."""
        if guild_id is None:
            return list(self.global_commands)
        return list(self.guild_commands.get(guild_id, []))

    def bulk_overwrite(self, incoming: list[Command], guild_id: int | None) -> list[Command]:
        """Replace a command list, keeping the ids of commands whose (name, type) survive."""
        ids = {(c["name"], c["type"]): c["id"] for c in self.listing(guild_id)}
        stored = [self._stored(c, ids, guild_id) for c in incoming]
        if guild_id is None:
            self.global_commands = stored
        else:
            self.guild_commands[guild_id] = stored
        self.sync_calls += 1
        return stored

    def _stored(
        self, command: Command, ids: dict[tuple[str, int], str], guild_id: int | None
    ) -> Command:
        """Build the stored form of one command, as Discord echoes it."""
        kind = command.get("type") or 1
        perms = command.get("default_member_permissions")
        stored: Command = {
            "id": ids.get((command["name"], kind)) or str(self._next_id()),
            "application_id": str(self._application_id),
            "version": str(self._next_id()),
            "type": kind,
            "name": command["name"],
            "name_localizations": command.get("name_localizations"),
            "description": command.get("description") or "",
            "description_localizations": command.get("description_localizations"),
            "default_member_permissions": None if perms is None else str(perms),
            "contexts": command.get("contexts"),
            "integration_types": command.get("integration_types") or [0],
            "nsfw": bool(command.get("nsfw")),
        }
        if command.get("options"):
            stored["options"] = command["options"]
        if guild_id is None:
            stored["dm_permission"] = command.get("dm_permission", True)
        else:
            stored["guild_id"] = str(guild_id)
        return stored

    def find(self, name: str, guild_id: int | None, kind: int = 1) -> Command:
        """Return the command the Discord client would offer (guild first, then global)."""
        scopes = [self.guild_commands.get(guild_id, [])] if guild_id else []
        for commands in [*scopes, self.global_commands]:
            for command in commands:
                if command["name"] == name and command["type"] == kind:
                    return command
        raise LookupError(f"command {name!r} (type {kind}) was never synced to the fake")


def check_can_use(
    command: Command,
    guild: FakeGuild | None,
    channel: FakeChannel,
    user: FakeUser,
    overridden: bool = False,
) -> None:
    """Refuse what the Discord client would not let the user invoke (context, membership, perms)."""
    contexts = command.get("contexts")
    if contexts is not None and (0 if guild else 1) not in contexts:
        raise ValueError(f"command {command['name']!r} is not available in this context")
    if guild is None:
        return
    if guild.member(user.id) is None:
        raise ValueError(f"{user.username} is not a member of {guild.name}")
    perms = guild.permissions_in(channel, user.id)
    if not perms & Perm.USE_APPLICATION_COMMANDS:
        raise PermissionError(f"{user.username} cannot use application commands in #{channel.name}")
    needed = command.get("default_member_permissions")
    if overridden:  # a server owner opened the command to everyone (Integrations settings)
        return
    if needed is not None and perms & int(needed) != int(needed) and not perms & Perm.ADMINISTRATOR:
        raise PermissionError(
            f"{user.username} lacks default_member_permissions of {command['name']!r}"
        )


def command_errors(commands: list[Command]) -> FormErrors:
    """Check the command rules the schema leaves out (names, descriptions, duplicates, order)."""
    errors = FormErrors()
    seen: set[tuple[str, int]] = set()
    for index, command in enumerate(commands):
        kind = command.get("type") or 1
        name = str(command.get("name", ""))
        if (name, kind) in seen:
            errors.add(
                [index, "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            )
        seen.add((name, kind))
        if kind == 1:
            _check_chat_input(errors, [index], command)
    return errors


def _check_localizations(errors: FormErrors, path: list[str | int], node: Command) -> None:
    """name_localizations: known locales, each a valid lower-case name; descriptions 1-100."""
    for locale, name in (node.get("name_localizations") or {}).items():
        where = [*path, "name_localizations", locale]
        if locale not in _locales():
            errors.add(where, "LOCALE_INVALID", f"Invalid locale {locale!r}")
        if not _COMMAND_NAME.match(str(name)) or name != str(name).lower():
            errors.add(where, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    for locale, text in (node.get("description_localizations") or {}).items():
        where = [*path, "description_localizations", locale]
        if locale not in _locales():
            errors.add(where, "LOCALE_INVALID", f"Invalid locale {locale!r}")
        if not 1 <= len(str(text)) <= 100:
            errors.add(where, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    _check_unique_localized(errors, path, node.get("options") or [])


def _check_unique_localized(
    errors: FormErrors, path: list[str | int], options: list[Command]
) -> None:
    """Sibling options may not share a name in any language."""
    seen: set[tuple[str, str]] = set()
    for i, option in enumerate(options):
        names = {("", str(option.get("name")))}
        names |= {(k, str(v)) for k, v in (option.get("name_localizations") or {}).items()}
        if names & seen:
            errors.add(
                [*path, "options", i, "name"],
                "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        seen |= names


def _check_chat_input(errors: FormErrors, path: list[str | int], node: Command) -> None:
    """Check a chat-input command or option: lower-case name, description, required-first."""
    name = str(node.get("name", ""))
    if not _COMMAND_NAME.match(name) or name != name.lower():
        errors.add([*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    if not str(node.get("description") or "").strip():
        errors.add([*path, "description"], "BASE_TYPE_REQUIRED", "This field is required")
    _check_localizations(errors, path, node)
    optional_seen = False
    for i, option in enumerate(node.get("options") or []):
        is_group = option.get("type") in (1, 2)
        if option.get("required") and optional_seen:
            errors.add(
                [*path, "options", i, "required"],
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )
        optional_seen = optional_seen or not (is_group or option.get("required"))
        _check_chat_input(errors, [*path, "options", i], option)
