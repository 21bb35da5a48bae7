"""Command, option and choice names and descriptions in each language (app_commands.Translator).

Descriptions are written in code as `described("key")`: the English default comes from the
en-US catalog, and the key travels with the string to the translator. Names stay identifiers
in code (`text`, `prompt`); their localized forms are catalog keys derived from them:
`name.cmd.video.text`, `name.menu.animate_image`, `name.opt.prompt` (or a command's own,
`name.opt.video.defaults.image`). A static choice is
`choice(key, value)`; autocomplete choices are rendered in the member's language directly.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot.i18n import DEFAULT_LOCALE, has, locale_of, render

# Languages the translator speaks to Discord; en-US is the code's default text.
TRANSLATED = ("zh-CN", "ja")


def described(key: str) -> app_commands.locale_str:
    """A description: its en-US text from the catalog, with its key for the translator."""
    return app_commands.locale_str(render(DEFAULT_LOCALE, key), key=key)


def describe(command: str, *params: str) -> dict[str, app_commands.locale_str]:
    """`app_commands.describe` keywords: `opt.<command>.<param>.desc`, else `opt.<param>.desc`."""
    out = {}
    for param in params:
        own = f"opt.{command}.{param}.desc"
        out[param] = described(own if has(own) else f"opt.{param}.desc")
    return out


def choice(key: str, value: Any) -> app_commands.Choice[Any]:
    """A static choice whose name is a catalog message."""
    return app_commands.Choice(name=described(key), value=value)


def name_key(location: Where, data: Any, message: str) -> str | None:
    """The catalog key of a command, option or choice name (None: not a name)."""
    if location in (Where.command_name, Where.group_name):
        if isinstance(data, app_commands.ContextMenu):
            return "name.menu." + data.name.lower().replace(" ", "_")
        return "name.cmd." + data.qualified_name.replace(" ", ".")
    if location is Where.parameter_name:
        # A command's own name for an option (`image` in /video defaults is a model), else
        # the option's shared name.
        path = data.command.qualified_name.replace(" ", ".")
        own = f"name.opt.{path}.{data.name}"
        return own if has(own) else f"name.opt.{data.name}"
    return None  # a choice carries its key (static choices); autocomplete is rendered already


class CatalogTranslator(app_commands.Translator):
    """Names and descriptions of the command tree from the message catalog."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        """The text for a language, or None (Discord then shows the default)."""
        code = locale_of(locale)
        if code not in TRANSLATED or code != locale.value:
            return None
        key = string.extras.get("key") or name_key(context.location, context.data, string.message)
        if key is None or not has(key):
            return None
        return render(code, key)
