"""The one message catalog: every text members see, by key, in each supported language.

The texts live in gettext .po files (bot/locales/<locale>/LC_MESSAGES/bot.po) whose msgids are
keys such as `refuse.credits`; placeholders are named (`{cost}`), plurals use the language's own
plural forms (Babel reads the .po and its Plural-Forms header). The engine never formats words
for members: it hands out `Msg` values (a key and its parameters) that the Discord side renders
in the member's language (a reply) or the server's (a channel post).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

DEFAULT_LOCALE = "en-US"
LOCALES = ("en-US", "zh-CN", "ja")  # Discord's locale codes
LOCALE_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "bot"
COUNT = "count"  # the parameter that picks a plural form
_STORED = "msg:"  # prefix of a Msg kept as text (a job's reason), see Msg.encode


@dataclass(frozen=True)
class Msg:
    """A text for members before it has a language: a catalog key and named parameters.

    A parameter may itself be a Msg (rendered in the same language), a number or a string
    (inserted as it is: quote member text with cogs.common.inert first).
    """

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        """The message as text for the database (rendered later, in the reader's language)."""
        return _STORED + json.dumps(_plain(self), ensure_ascii=False, sort_keys=True)

    @staticmethod
    def decode(text: str | None) -> Msg | None:
        """A stored message, or None for plain text (a provider's words, an older row)."""
        if not text or not text.startswith(_STORED):
            return None
        try:
            return _from_plain(json.loads(text[len(_STORED) :]))
        except (ValueError, KeyError, TypeError):
            return None


def msg(key: str, **params: Any) -> Msg:
    """A Msg from a key and keyword parameters."""
    return Msg(key, params)


def _plain(message: Msg) -> dict[str, Any]:
    """A Msg as JSON-ready dicts (nested messages too)."""
    params = {k: _plain(v) if isinstance(v, Msg) else v for k, v in message.params.items()}
    return {"k": message.key, "p": params}


def _from_plain(data: dict[str, Any]) -> Msg:
    """The inverse of _plain."""
    params = {
        k: _from_plain(v) if isinstance(v, dict) and "k" in v else v for k, v in data["p"].items()
    }
    return Msg(str(data["k"]), params)


def locale_of(value: object) -> str:
    """A supported locale for a Discord locale (discord.Locale or its code); else en-US."""
    code = str(getattr(value, "value", value) or "")
    return code if code in LOCALES else DEFAULT_LOCALE


def _po_path(locale: str) -> Path:
    """Where a locale's .po file lives (gettext's directory layout)."""
    return LOCALE_DIR / locale.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(locale: str) -> Catalog:
    """A locale's catalog as Babel parses it (keys, texts, plural forms, flags)."""
    with _po_path(locale).open("rb") as fh:
        return read_po(fh, locale=locale.replace("-", "_"), domain=DOMAIN)


@functools.cache
def _translations(locale: str) -> Translations:
    """The compiled catalog of one locale (compiled in memory: the .po is the only source)."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(locale))
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


@functools.cache
def plural_keys() -> frozenset[str]:
    """Keys whose text depends on `count` (plural entries of the en-US catalog)."""
    return frozenset(str(m.id[0]) for m in read_catalog(DEFAULT_LOCALE) if m.pluralizable)


@functools.cache
def keys() -> frozenset[str]:
    """Every key of the en-US catalog."""
    catalog = read_catalog(DEFAULT_LOCALE)
    return frozenset(str(m.id[0] if m.pluralizable else m.id) for m in catalog if m.id)


def has(key: str) -> bool:
    """Whether the catalog has this key."""
    return key in keys()


def template(locale: str, key: str, count: int | None = None) -> str:
    """The raw text of a key in a locale (en-US where the locale lacks it)."""
    for code in (locale_of(locale), DEFAULT_LOCALE):
        found = _lookup(_translations(code), key, count)
        if found is not None:
            return found
    raise KeyError(f"message key {key!r} is not in the catalog")


def _lookup(translations: Translations, key: str, count: int | None) -> str | None:
    """gettext's answer, or None where it echoes the key back (not translated)."""
    if key in plural_keys():
        text = translations.ngettext(key, key, 1 if count is None else count)
    else:
        text = translations.gettext(key)
    return None if text == key else text


def render(locale: str, message: Msg | str, **params: Any) -> str:
    """A message's text in a locale: parameters filled in, nested messages rendered too."""
    if isinstance(message, str):
        message = Msg(message, params)
    elif params:
        message = Msg(message.key, {**message.params, **params})
    values = {k: render(locale, v) if isinstance(v, Msg) else v for k, v in message.params.items()}
    count = values.get(COUNT)
    text = template(locale, message.key, count if isinstance(count, int) else None)
    return text.format_map(values)


def po_digest() -> str:
    """A hash of every catalog file (the command tree's localizations change with them)."""
    digest = hashlib.sha256()
    for locale in LOCALES:
        digest.update(_po_path(locale).read_bytes())
    return digest.hexdigest()


def placeholders(text: str) -> set[str]:
    """The named placeholders of a template (`{cost}` → cost)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}
