"""Data model of the fake Discord: users, guilds, channels, messages, interactions."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

DISCORD_EPOCH_MS = 1_420_070_400_000
MiB = 1024 * 1024
DEFAULT_FILESIZE_LIMIT = 10 * MiB
INTERACTION_TOKEN_TTL = 15 * 60.0
NONCE_WINDOW = 5 * 60.0

MESSAGE_FLAG_SUPPRESS_EMBEDS = 1 << 2
MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7
MESSAGE_FLAG_COMPONENTS_V2 = 1 << 15


class Perm(enum.IntFlag):
    """Discord permission bits (the subset a bot cares about)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40
    USE_EXTERNAL_APPS = 1 << 50


ALL_PERMISSIONS = (1 << 51) - 1
DEFAULT_EVERYONE_PERMISSIONS = int(
    Perm.CREATE_INSTANT_INVITE
    | Perm.ADD_REACTIONS
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.CONNECT
    | Perm.SPEAK
    | Perm.CHANGE_NICKNAME
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.CREATE_PUBLIC_THREADS
    | Perm.SEND_MESSAGES_IN_THREADS
    | Perm.USE_EXTERNAL_APPS
)
SEND_DEPENDENT_PERMISSIONS = int(Perm.ATTACH_FILES | Perm.EMBED_LINKS | Perm.MENTION_EVERYONE)


class Intent(enum.IntFlag):
    """Gateway intent bits the fake gates events on."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15


PRIVILEGED_INTENTS = int(Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES | Intent.MESSAGE_CONTENT)


def iso(ts: float) -> str:
    """Format a unix timestamp the way Discord does (ISO 8601 with offset)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


class SnowflakeFactory:
    """Produces unique, increasing snowflakes derived from the fake clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        """Remember the clock used for the timestamp part."""
        self._clock = clock
        self._last = 0

    def __call__(self) -> int:
        """Return the next snowflake."""
        candidate = (int(self._clock() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last

    def on_shard(self, shard_id: int, count: int) -> int:
        """The next snowflake whose shard, (id >> 22) % count, is `shard_id` (a guild's id)."""
        first = self()
        step = (shard_id - (first >> 22)) % count
        self._last = first if step == 0 else ((first >> 22) + step) << 22
        return self._last


class Signal:
    """A broadcast 'state changed' notification that waiters re-check predicates on."""

    def __init__(self) -> None:
        """Create the first generation event."""
        self._event = asyncio.Event()

    def fire(self) -> None:
        """Wake every waiter (they re-check their predicate)."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        """Wait until ``probe()`` returns something truthy, or raise TimeoutError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = probe()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"fake discord: timed out after {timeout}s waiting for {what}")
            event = self._event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                continue


class RecordedRequest(NamedTuple):
    """One REST request as it arrived: method, path below the API base, monotonic time."""

    method: str
    path: str
    at: float


class RecordedCallback(NamedTuple):
    """One accepted interaction callback."""

    interaction_id: int
    type: int
    payload: dict[str, Any]
    at: float


class InvalidRequest(NamedTuple):
    """A request whose body Discord would reject with 50035 / 50006."""

    method: str
    path: str
    body: Any
    errors: dict[str, Any]


class ErrorResponse(NamedTuple):
    """Any non-2xx answer the fake gave."""

    method: str
    path: str
    status: int
    body: dict[str, Any]


@dataclass
class FakeUser:
    """A Discord user."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    accepts_dms: bool = True

    def payload(self) -> dict[str, Any]:
        """Return the user object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }
        if self.bot:
            data["bot"] = True
        return data

    @property
    def mention(self) -> str:
        """Return the mention markup for this user."""
        return f"<@{self.id}>"


@dataclass
class FakeRole:
    """A guild role."""

    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def payload(self) -> dict[str, Any]:
        """Return the role object."""
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class FakeMember:
    """A user's membership in a guild."""

    user: FakeUser
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: float = field(default_factory=time.time)

    @property
    def id(self) -> int:
        """Return the user id."""
        return self.user.id

    def payload(self, *, with_user: bool = True) -> dict[str, Any]:
        """Return the guild member object."""
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": iso(self.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass
class Overwrite:
    """A channel permission overwrite (type 0 role, 1 member)."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        """Return the overwrite object."""
        return {
            "id": str(self.id),
            "type": self.type,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


@dataclass
class FakeChannel:
    """A guild text channel or a DM channel."""

    id: int
    name: str | None
    type: int = 0
    guild_id: int | None = None
    position: int = 0
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    recipient: FakeUser | None = None
    last_message_id: int | None = None

    @property
    def is_dm(self) -> bool:
        """Return True for DM channels."""
        return self.type == 1

    def payload(self) -> dict[str, Any]:
        """Return the channel object."""
        if self.is_dm:
            return self._dm_payload()
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "last_message_id": _opt_str(self.last_message_id),
            "flags": 0,
        }

    def _dm_payload(self) -> dict[str, Any]:
        """Return the DM channel object."""
        recipients = [self.recipient.payload()] if self.recipient else []
        return {
            "id": str(self.id),
            "type": 1,
            "last_message_id": _opt_str(self.last_message_id),
            "flags": 0,
            "recipients": recipients,
        }


@dataclass
class FakeGuild:
    """A guild with its roles, members and channels."""

    id: int
    name: str
    owner_id: int
    filesize_limit: int = DEFAULT_FILESIZE_LIMIT
    locale: str = "en-US"
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    joined_at: float = field(default_factory=time.time)

    @property
    def premium_tier(self) -> int:
        """Return the boost tier whose upload limit matches ``filesize_limit``."""
        if self.filesize_limit >= 100 * MiB:
            return 3
        if self.filesize_limit >= 50 * MiB:
            return 2
        return 0

    def channel(self, name: str) -> FakeChannel:
        """Return the channel with this name."""
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise KeyError(f"no channel named {name!r} in guild {self.name!r}")

    def member(self, user_id: int) -> FakeMember | None:
        """Return the member with this user id, if any."""
        return self.members.get(user_id)

    def base_permissions(self, user_id: int) -> int:
        """Compute a member's guild-level permissions."""
        member = self.members.get(user_id)
        if member is None:
            return 0
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        perms = self.roles[self.id].permissions
        for role_id in member.roles:
            perms |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if perms & Perm.ADMINISTRATOR else perms

    def permissions_in(self, channel: FakeChannel, user_id: int) -> int:
        """Compute a member's permissions in a channel (Discord's overwrite algorithm)."""
        member = self.members.get(user_id)
        perms = self.base_permissions(user_id)
        if member is None or perms == ALL_PERMISSIONS:
            return perms
        perms = _apply(perms, channel.overwrites.get(self.id))
        allow = deny = 0
        for role_id in member.roles:
            ow = channel.overwrites.get(role_id)
            if ow is not None and ow.type == 0:
                allow, deny = allow | ow.allow, deny | ow.deny
        perms = (perms & ~deny) | allow
        own = channel.overwrites.get(user_id)
        perms = _apply(perms, own if own is not None and own.type == 1 else None)
        return _implicit(perms)

    def payload(self) -> dict[str, Any]:
        """Return the REST guild object (no members/channels, like GET /guilds/{id})."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": self.premium_tier,
            "premium_subscription_count": 0,
            "preferred_locale": self.locale,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
        }

    def gateway_payload(self, bot_id: int, *, all_members: bool) -> dict[str, Any]:
        """Return the GUILD_CREATE payload as the given bot sees it."""
        members = [m for m in self.members.values() if all_members or m.id == bot_id]
        data = self.payload()
        data.update(
            joined_at=iso(self.joined_at),
            large=False,
            unavailable=False,
            member_count=len(self.members),
            members=[m.payload() for m in members],
            channels=[c.payload() for c in self.channels.values()],
            threads=[],
            presences=[],
            voice_states=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            embedded_activities=[],
        )
        return data


def _apply(perms: int, overwrite: Overwrite | None) -> int:
    """Apply one overwrite (deny first, then allow)."""
    if overwrite is None:
        return perms
    return (perms & ~overwrite.deny) | overwrite.allow


def _implicit(perms: int) -> int:
    """Apply Discord's implicit denials (no view → nothing; no send → no attach/embed/mention)."""
    if not perms & Perm.VIEW_CHANNEL:
        return 0
    if not perms & Perm.SEND_MESSAGES:
        perms &= ~SEND_DEPENDENT_PERMISSIONS
    return perms


def _opt_str(value: int | None) -> str | None:
    """Stringify an optional snowflake."""
    return None if value is None else str(value)


@dataclass
class StoredAttachment:
    """An uploaded (or test-registered) file served by the fake CDN."""

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    proxy_url: str
    description: str | None = None
    width: int | None = None
    height: int | None = None

    def payload(self) -> dict[str, Any]:
        """Return the attachment object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.proxy_url,
            "content_type": self.content_type,
            "flags": 0,
        }
        if self.description is not None:
            data["description"] = self.description
        if self.width is not None and self.height is not None:
            data.update(
                width=self.width, height=self.height, placeholder=None, placeholder_version=1
            )
        return data


@dataclass
class MessageEdit:
    """One edit applied to a message."""

    at: float
    payload: dict[str, Any]
    previous_content: str


@dataclass
class FakeMessage:
    """A message stored in a channel."""

    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    created_at: float
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    files: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    nonce: str | int | None = None
    allowed_mentions: dict[str, Any] | None = None
    mentions: list[FakeUser] = field(default_factory=list)
    message_reference: dict[str, Any] | None = None
    referenced: FakeMessage | None = None  # a reply's message, sent as `referenced_message`
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    visible_to: int | None = None
    edited_at: float | None = None
    edits: list[MessageEdit] = field(default_factory=list)
    deleted: bool = False

    @property
    def author_id(self) -> int:
        """Return the author's user id."""
        return self.author.id

    @property
    def ephemeral(self) -> bool:
        """Return True if the message carries the EPHEMERAL flag."""
        return bool(self.flags & MESSAGE_FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Return True while the message is a deferred 'thinking…' placeholder."""
        return bool(self.flags & MESSAGE_FLAG_LOADING)

    @property
    def attachments(self) -> list[tuple[str, bytes]]:
        """Return the attached files as (filename, bytes)."""
        return [(a.filename, a.data) for a in self.files]

    def visible_for(self, user_id: int | None) -> bool:
        """Return True if ``user_id`` can see this message (None = omniscient test view)."""
        return user_id is None or self.visible_to is None or self.visible_to == user_id

    def payload(self, member: FakeMember | None = None) -> dict[str, Any]:
        """Return the message object (``member`` adds the author's member for gateway events)."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": None if self.edited_at is None else iso(self.edited_at),
            "tts": self.tts,
            "mention_everyone": False,
            "mentions": [u.payload() for u in self.mentions],
            "mention_roles": [],
            "mention_channels": [],
            "attachments": [a.payload() for a in self.files],
            "embeds": self.embeds,
            "components": self.components,
            "reactions": [],
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        self._add_optional(data, member)
        return data

    def _add_optional(self, data: dict[str, Any], member: FakeMember | None) -> None:
        """Add the keys Discord only sends when they apply."""
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if member is not None:
            data["member"] = member.payload(with_user=False)
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
        if self.referenced is not None:
            data["referenced_message"] = self.referenced.payload()


INTERACTION_PING = 1
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5


@dataclass
class FakeInteraction:
    """Handle on one interaction the fake dispatched, and what the bot did with it."""

    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user: FakeUser
    created_at: float
    payload: dict[str, Any]
    signal: Signal
    name: str | None = None
    command_type: int | None = None
    source_message: FakeMessage | None = None
    dispatched_at: float | None = None
    callback: dict[str, Any] | None = None
    callback_type: int | None = None
    callback_at: float | None = None
    original: FakeMessage | None = None
    deferred_pending: bool = False
    modal: dict[str, Any] | None = None
    responses: list[FakeMessage] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        """Return True once a callback was accepted."""
        return self.callback is not None

    @property
    def data(self) -> dict[str, Any]:
        """Return the interaction's ``data`` object."""
        return self.payload.get("data", {})

    async def wait_callback(self, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the bot's interaction callback and return its payload."""
        return await self.signal.wait_for(
            lambda: self.callback, timeout, f"a callback to interaction {self.name or self.id}"
        )

    async def wait_response(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 5.0
    ) -> FakeMessage:
        """Wait for a response matching ``predicate`` (default: not a 'thinking…' placeholder)."""
        check = predicate or (lambda m: not m.loading)

        def probe() -> FakeMessage | None:
            """Return the first matching live response."""
            return next((m for m in self.responses if not m.deleted and check(m)), None)

        return await self.signal.wait_for(probe, timeout, f"a response to {self.name or self.id}")
