"""Who may generate what, where, and at what cost: the moderators' rules applied to a request."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import regex

from bot import models
from bot.errors import InputError, NotAllowedError
from bot.i18n import DEFAULT_LOCALE, Msg, msg, render
from bot.text import skeleton
from storage.moderation import CostRule, ModerationStore

log = logging.getLogger(__name__)

MAX_PATTERN = 200  # prompts are ≤ 512 characters; short patterns keep matching cheap
MAX_ENTRIES = 100  # per server: the whole list is matched against every prompt
# Seconds the whole blocklist may take on one prompt (the `regex` timeout is checked coarsely,
# so a runaway pattern costs a few times this, in a worker thread, never on the event loop).
MATCH_BUDGET = 0.25
# A pattern must decide these quickly when it is added (catastrophic backtracking shows here).
_PROBES = ("a" * 200 + "!", "a " * 100 + "!", "0" * 200 + "x", " " * 200 + "!")

Alert = Callable[[int, Msg], Awaitable[None]]


def _probes(pattern: str) -> list[str]:
    """Strings that make a backtracking pattern show itself: runs of each letter it names."""
    letters = list(dict.fromkeys(c for c in pattern.casefold() if c.isalnum()))[:8]
    return [*_PROBES, *(c * 200 + "!" for c in letters)]


@functools.lru_cache(maxsize=1024)
def compile_block(pattern: str, is_regex: bool) -> regex.Pattern[str]:
    r"""A blocklist entry as a case-insensitive regex over skeletons; plain words match whole
    words only. A regex is folded but not case folded (that would turn `\W` into `\w`)."""
    if is_regex:
        return regex.compile(skeleton(pattern, casefold=False), regex.IGNORECASE)
    return regex.compile(rf"(?<!\w){regex.escape(skeleton(pattern))}(?!\w)", regex.IGNORECASE)


def validate_block(pattern: str, is_regex: bool) -> str:
    """Check a blocklist entry when it is added, not when it is matched."""
    pattern = pattern.strip()
    if not pattern:
        raise InputError("block.empty")
    if len(pattern) > MAX_PATTERN:
        raise InputError("block.too_long", limit=MAX_PATTERN)
    try:
        compiled = compile_block(pattern, is_regex)
    except regex.error as exc:
        raise InputError("block.bad_regex", pattern=pattern, error=str(exc)) from None
    try:
        for probe in _probes(pattern):
            compiled.search(probe, timeout=MATCH_BUDGET, concurrent=True)
    except TimeoutError:
        raise InputError("block.too_slow", pattern=pattern) from None
    return pattern


def first_match(entries: Sequence[tuple[str, bool]], text: str, budget: float) -> str | None:
    """The first entry matching `text` (None if none); raises BlocklistTimeout naming the entry
    that could not be decided within `budget` seconds. Runs in a worker thread."""
    folded = skeleton(text)
    deadline = time.monotonic() + budget
    for pattern, is_regex in entries:
        left = max(0.001, deadline - time.monotonic())
        try:
            if compile_block(pattern, is_regex).search(folded, timeout=left, concurrent=True):
                return pattern
        except TimeoutError:
            raise BlocklistTimeout(pattern) from None
        except regex.error:  # stored before validation used `regex`: refuse rather than skip
            raise BlocklistTimeout(pattern) from None
    return None


class BlocklistTimeout(Exception):
    """A blocklist entry could not be decided in time for a prompt."""

    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern


def cost_of(rules: list[CostRule], model: str, options: Mapping[str, Any], default: int = 1) -> int:
    """The highest matching rule: the model's own cost, or one for an option value; else
    `default` (1; speech recognition is free unless priced)."""
    cost = default
    base = [r.cost for r in rules if r.model == model and not r.option]
    if base:
        cost = base[-1]
    for rule in rules:
        if rule.model == model and rule.option and str(options.get(rule.option)) == rule.value:
            cost = max(cost, rule.cost)
    return cost


class Policy:
    """Applies a guild's rules to a request; refusals are audited."""

    def __init__(self, store: ModerationStore) -> None:
        self.store = store
        self.alert: Alert | None = None  # the front end's way to tell a server's moderators
        self._reported: set[tuple[int, str]] = set()  # slow entries already told about

    async def check(
        self, guild_id: int, channel_id: int, user_id: int, model: str, prompt: str | None
    ) -> None:
        """Raise NotAllowedError (and audit it) if the rules refuse this request."""
        try:
            await self._check(guild_id, channel_id, user_id, model, prompt)
        except NotAllowedError as exc:
            await self.store.audit(
                guild_id, user_id, "refused", exc.user_message, target_id=channel_id
            )
            raise

    async def _check(
        self, guild_id: int, channel_id: int, user_id: int, model: str, prompt: str | None
    ) -> None:
        """Ban, channel, model, blocklist — in that order."""
        reason = await self.store.ban_reason(guild_id, user_id)
        if reason is not None:
            raise NotAllowedError("refuse.banned", reason=reason)
        await self._check_channel(guild_id, channel_id)
        await self._check_model(guild_id, model)
        if prompt:
            await self._check_blocklist(guild_id, prompt)

    async def _check_blocklist(self, guild_id: int, prompt: str) -> None:
        """Match the prompt's skeleton off the event loop, in bounded time; undecided refuses."""
        entries = await self.store.blocklist(guild_id)
        if not entries:
            return
        try:
            hit = await asyncio.to_thread(first_match, entries, prompt, MATCH_BUDGET)
        except BlocklistTimeout as exc:
            await self._report_slow(guild_id, exc.pattern)
            raise NotAllowedError("refuse.blocklist_slow") from None
        if hit is not None:
            raise NotAllowedError("refuse.blocklist")

    async def _report_slow(self, guild_id: int, pattern: str) -> None:
        """Tell the moderators once per entry (audit + alert channel) that it is too slow."""
        if (guild_id, pattern) in self._reported:
            return
        self._reported.add((guild_id, pattern))
        text = msg("alert.blocklist_slow", pattern=pattern)
        log.warning("guild %d: blocklist entry %r timed out", guild_id, pattern)
        await self.store.audit(guild_id, None, "blocklist.timeout", render(DEFAULT_LOCALE, text))
        if self.alert is not None:
            try:
                await self.alert(guild_id, text)
            except Exception:  # the refusal stands even if the alert cannot be posted
                log.exception("guild %d: could not post the blocklist alert", guild_id)

    async def add_block(self, guild_id: int, pattern: str, is_regex: bool, actor_id: int) -> str:
        """Validate (syntax, length, speed) and store an entry, within MAX_ENTRIES."""
        clean = await asyncio.to_thread(validate_block, pattern, is_regex)
        if len(await self.store.blocklist(guild_id)) >= MAX_ENTRIES:
            raise InputError("block.full", limit=MAX_ENTRIES)
        await self.store.add_block(guild_id, clean, is_regex, actor_id)
        return clean

    async def _check_channel(self, guild_id: int, channel_id: int) -> None:
        """Denied channels refuse; if any channel is allowed, only those work."""
        rules = await self.store.channel_rules(guild_id)
        allowed = [c for c, ok in rules.items() if ok]
        if rules.get(channel_id) is False or (allowed and channel_id not in allowed):
            where = ", ".join(f"<#{c}>" for c in allowed[:10])
            if where:
                raise NotAllowedError("refuse.channel_use", channels=where)
            raise NotAllowedError("refuse.channel")

    async def _check_model(self, guild_id: int, model: str) -> None:
        """A model a moderator disabled is refused, naming the ones on offer."""
        rules = await self.store.model_rules(guild_id)
        if rules.get(model) is False:
            offered = [m for m in models.peers(model) if rules.get(m, True)]
            if offered:
                raise NotAllowedError("refuse.model_off", model=model, models=", ".join(offered))
            raise NotAllowedError("refuse.model_off_all", model=model)

    async def cost(
        self, guild_id: int, model: str, options: Mapping[str, Any], default: int = 1
    ) -> int:
        """Credits this request costs here."""
        return cost_of(await self.store.costs(guild_id), model, options, default)
