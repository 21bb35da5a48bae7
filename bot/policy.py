"""Who may generate what, where, and at what cost: the moderators' rules applied to a request."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from bot import models
from bot.errors import InputError, NotAllowedError
from storage.moderation import CostRule, ModerationStore

MAX_PATTERN = 200  # prompts are ≤ 512 characters; short patterns keep matching cheap


@functools.lru_cache(maxsize=1024)
def compile_block(pattern: str, is_regex: bool) -> re.Pattern[str]:
    """A blocklist entry as a case-insensitive regex; plain words match whole words only."""
    if is_regex:
        return re.compile(pattern, re.IGNORECASE)
    return re.compile(rf"(?<!\w){re.escape(pattern)}(?!\w)", re.IGNORECASE)


def validate_block(pattern: str, is_regex: bool) -> str:
    """Check a blocklist entry when it is added, not when it is matched."""
    pattern = pattern.strip()
    if not pattern:
        raise InputError("Give a word, a phrase or a regular expression to block.")
    if len(pattern) > MAX_PATTERN:
        raise InputError(f"Keep blocklist entries under {MAX_PATTERN} characters.")
    try:
        compile_block(pattern, is_regex)
    except re.error as exc:
        raise InputError(
            f"`{pattern}` is not a valid regular expression ({exc}). Fix it and add it again."
        ) from None
    return pattern


def cost_of(rules: list[CostRule], model: str, options: Mapping[str, Any]) -> int:
    """The highest matching rule: the model's own cost, or one for an option value; default 1."""
    cost = 1
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
            raise NotAllowedError(
                f"You are not allowed to make videos on this server. Reason: {reason}"
            )
        await self._check_channel(guild_id, channel_id)
        await self._check_model(guild_id, model)
        if prompt:
            for pattern, is_regex in await self.store.blocklist(guild_id):
                if compile_block(pattern, is_regex).search(prompt):
                    raise NotAllowedError(
                        "Your prompt contains something this server's moderators do not allow. "
                        "Rephrase it; nothing was charged."
                    )

    async def _check_channel(self, guild_id: int, channel_id: int) -> None:
        """Denied channels refuse; if any channel is allowed, only those work."""
        rules = await self.store.channel_rules(guild_id)
        allowed = [c for c, ok in rules.items() if ok]
        if rules.get(channel_id) is False or (allowed and channel_id not in allowed):
            where = ", ".join(f"<#{c}>" for c in allowed[:10])
            hint = f" Use {where}." if where else ""
            raise NotAllowedError(f"Videos cannot be made in this channel.{hint}")

    async def _check_model(self, guild_id: int, model: str) -> None:
        """A model a moderator disabled is refused, naming the ones on offer."""
        rules = await self.store.model_rules(guild_id)
        if rules.get(model) is False:
            offered = [m for m in models.MODELS if rules.get(m, True)]
            raise NotAllowedError(
                f"{model} is turned off on this server. Available: {', '.join(offered) or 'none'}."
            )

    async def cost(self, guild_id: int, model: str, options: Mapping[str, Any]) -> int:
        """Credits this request costs here."""
        return cost_of(await self.store.costs(guild_id), model, options)
