"""A fake Discord (REST + gateway + CDN on 127.0.0.1) that the unmodified discord.py talks to.

Typical use::

    async with FakeDiscord() as fake:
        guild = fake.add_guild(name="Test", channels=["general"])
        with fake.patch_discord_py():
            ...  # start the bot with fake.token, then await fake.wait_ready()
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .discord_commands import CommandStore, check_can_use
from .discord_gateway import (
    HEARTBEAT_INTERVAL_MS,
    MAX_GUILDS_PER_SESSION,
    GatewayServer,
    GatewaySession,
)
from .discord_interactions import (
    build_interaction,
    command_options,
    component_data,
    find_component,
    modal_submit_data,
)
from .discord_messages import make_attachment, mentioned_users
from .discord_rest import RestApi
from .discord_server import API_PREFIX, CDN_PREFIX, Fault, FaultInjector, build_app
from .discord_state import (
    DEFAULT_EVERYONE_PERMISSIONS,
    DEFAULT_FILESIZE_LIMIT,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    INTERACTION_TOKEN_TTL,
    NONCE_WINDOW,
    PRIVILEGED_INTENTS,
    ErrorResponse,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    Intent,
    InvalidRequest,
    MiB,
    Overwrite,
    Perm,
    RecordedCallback,
    RecordedRequest,
    Signal,
    SnowflakeFactory,
    StoredAttachment,
)
from .discord_validation import DiscordError, FormErrors, precompile, schema_errors
from .discord_webhooks import InteractionApi

__all__ = [
    "DEFAULT_EVERYONE_PERMISSIONS",
    "DEFAULT_FILESIZE_LIMIT",
    "ErrorResponse",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Intent",
    "InvalidRequest",
    "MiB",
    "Perm",
    "RecordedCallback",
    "RecordedRequest",
]

DM_PERMISSIONS = int(
    Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.ADD_REACTIONS
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.USE_APPLICATION_COMMANDS
)
DISPATCH_TIMEOUT = 5.0

GuildArg = FakeGuild | int
ChannelArg = FakeChannel | int
UserArg = FakeUser | FakeMember | int
MessagePredicate = Callable[[FakeMessage], bool]


class FakeDiscord:
    """Fake Discord API + gateway + CDN for one bot application."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "FakeBot",
        application_id: int | None = None,
        allowed_privileged_intents: int = PRIVILEGED_INTENTS,
        ack_deadline: float = 3.0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create the state; call ``start()`` (or use ``async with``) to serve it."""
        self._clock = clock
        self._offset = 0.0
        self.next_id = SnowflakeFactory(self.now)
        self.token = token
        self.host, self.port = host, port
        self.signal = Signal()
        self.bot_user = FakeUser(self.next_id(), bot_name, bot=True)
        self.application_id = application_id or self.bot_user.id
        self.app_owner = FakeUser(self.next_id(), "app-owner")
        self.users: dict[int, FakeUser] = {u.id: u for u in (self.bot_user, self.app_owner)}
        # Command names a server owner opened to everyone, overriding default_member_permissions.
        self.visibility_overrides: set[str] = set()
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.cdn: dict[int, StoredAttachment] = {}
        self.command_store = CommandStore(self.next_id, self.application_id)
        self._init_records()
        self.faults = FaultInjector()
        self.allowed_privileged_intents = allowed_privileged_intents
        self.ack_deadline = ack_deadline
        self.user_locale = "en-US"
        self.dm_app_permissions = DM_PERMISSIONS
        # Sharding: GET /gateway/bot recommends one shard per `guilds_per_shard` guilds; an
        # IDENTIFY whose session would hold more than `max_guilds_per_session` gets 4011.
        self.guilds_per_shard = 1000
        self.max_guilds_per_session = MAX_GUILDS_PER_SESSION
        self.heartbeat_interval_ms = HEARTBEAT_INTERVAL_MS  # HELLO's; lower it to see latencies
        self.gateway = GatewayServer(self)
        self.rest = RestApi(self)
        self.hooks = InteractionApi(self)
        self._messages: dict[int, FakeMessage] = {}
        self._by_token: dict[str, FakeInteraction] = {}
        self._nonces: dict[tuple[int, int, str], tuple[int, float]] = {}
        self._uploads_channel = self.next_id()
        self._runner: web.AppRunner | None = None
        self.cdn_redirects: dict[int, str] = {}
        self.held_uploads = 0
        self._upload_gate: asyncio.Event | None = None
        self._upload_nonce: str | None = None  # hold only the uploads with this nonce

    def _init_records(self) -> None:
        """Create the lists tests inspect."""
        self.requests: list[RecordedRequest] = []
        self.callbacks: list[RecordedCallback] = []
        self.invalid_requests: list[InvalidRequest] = []
        self.error_responses: list[ErrorResponse] = []
        self.unhandled_requests: list[RecordedRequest] = []
        self.server_errors: list[str] = []
        self.cdn_downloads: list[str] = []  # filenames the CDN served, in order

    # lifecycle

    async def start(self) -> FakeDiscord:
        """Start serving on host:port (port 0 picks a free one)."""
        precompile()
        self._runner = web.AppRunner(build_app(self), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close gateway connections and stop the server."""
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        """Start the server."""
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        """Stop the server."""
        await self.stop()

    @property
    def base_url(self) -> str:
        """Return http://host:port."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """Return the value for ``discord.http.Route.BASE``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """Return the websocket URL for ``DiscordWebSocket.DEFAULT_GATEWAY`` (and GET /gateway)."""
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """Return the READY ``resume_gateway_url`` (a separate path, so resumes are observable)."""
        return f"ws://{self.host}:{self.port}/gateway-resume"

    @contextlib.contextmanager
    def patch_discord_py(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at this fake, restoring them after."""
        import discord.gateway
        import discord.http
        import yarl

        route, socket = discord.http.Route, discord.gateway.DiscordWebSocket
        old_base, old_gateway = route.BASE, socket.DEFAULT_GATEWAY
        route.BASE = self.api_base
        socket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            route.BASE, socket.DEFAULT_GATEWAY = old_base, old_gateway

    # clock

    def now(self) -> float:
        """Return the fake wall clock (unix seconds) that drives expiries and snowflakes."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake clock forward."""
        self._offset += seconds

    # setup: users, guilds, members, channels

    def add_user(
        self,
        username: str,
        *,
        user_id: int | None = None,
        global_name: str | None = None,
        bot: bool = False,
        accepts_dms: bool = True,
    ) -> FakeUser:
        """Register a user."""
        user = FakeUser(user_id or self.next_id(), username, global_name, bot, accepts_dms)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        guild_id: int | None = None,
        name: str = "Test Guild",
        channels: Sequence[str] = ("general",),
        filesize_limit: int = DEFAULT_FILESIZE_LIMIT,
        members: Iterable[FakeUser | tuple[FakeUser, int]] = (),
        *,
        bot_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        locale: str = "en-US",
    ) -> FakeGuild:
        """Create a guild (owner, bot member, text channels); members may be (user, permissions)."""
        gid = guild_id or self.next_id()
        owner = self.add_user(f"{name} owner")
        guild = FakeGuild(gid, name, owner.id, filesize_limit, locale, joined_at=self.now())
        guild.roles[gid] = FakeRole(gid, "@everyone", DEFAULT_EVERYONE_PERMISSIONS)
        bot_role = FakeRole(
            self.next_id(), self.bot_user.username, bot_permissions, 1, managed=True
        )
        guild.roles[bot_role.id] = bot_role
        guild.members[owner.id] = FakeMember(owner, gid, joined_at=self.now())
        guild.members[self.bot_user.id] = FakeMember(
            self.bot_user, gid, [bot_role.id], joined_at=self.now()
        )
        for position, channel_name in enumerate(channels):
            self._new_channel(guild, channel_name, position)
        self.guilds[gid] = guild
        for entry in members:
            user, perms = entry if isinstance(entry, tuple) else (entry, 0)
            self.add_member(guild, user, permissions=perms, announce=False)
        self._announce_guild(guild)
        return guild

    def _new_channel(self, guild: FakeGuild, name: str, position: int) -> FakeChannel:
        """Create a text channel in a guild."""
        channel = FakeChannel(self.next_id(), name, 0, guild.id, position)
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        return channel

    def _announce_guild(self, guild: FakeGuild) -> None:
        """Send GUILD_CREATE to live sessions (the bot joined a guild)."""

        def shape(session: GatewaySession, _data: dict[str, Any]) -> dict[str, Any]:
            """Build the payload with or without the member list."""
            all_members = session.has(Intent.GUILD_MEMBERS)
            return guild.gateway_payload(self.bot_user.id, all_members=all_members)

        self.gateway.dispatch("GUILD_CREATE", {}, guild_id=guild.id, shape=shape)

    def add_member(
        self,
        guild: GuildArg,
        user: FakeUser,
        *,
        permissions: int = 0,
        nick: str | None = None,
        announce: bool = True,
    ) -> FakeMember:
        """Add a user to a guild; extra ``permissions`` (e.g. Perm.MANAGE_GUILD) come via a role."""
        g = self._guild(guild)
        self.users.setdefault(user.id, user)
        roles = []
        if permissions:
            role = FakeRole(self.next_id(), f"{user.username}-role", int(permissions), 1)
            g.roles[role.id] = role
            roles.append(role.id)
            if announce:
                data = {"guild_id": str(g.id), "role": role.payload()}
                self.gateway.dispatch(
                    "GUILD_ROLE_CREATE", data, guild_id=g.id, intent=Intent.GUILDS
                )
        member = FakeMember(user, g.id, roles, nick, joined_at=self.now())
        g.members[user.id] = member
        if announce:
            data = {**member.payload(), "guild_id": str(g.id)}
            self.gateway.dispatch(
                "GUILD_MEMBER_ADD", data, guild_id=g.id, intent=Intent.GUILD_MEMBERS
            )
        return member

    def add_channel(self, guild: GuildArg, name: str) -> FakeChannel:
        """Create a text channel and announce it (CHANNEL_CREATE)."""
        g = self._guild(guild)
        channel = self._new_channel(g, name, len(g.channels))
        self.gateway.dispatch(
            "CHANNEL_CREATE", channel.payload(), guild_id=g.id, intent=Intent.GUILDS
        )
        return channel

    def remove_member(self, guild: GuildArg, user: UserArg) -> None:
        """Remove a member (GUILD_MEMBER_REMOVE)."""
        g = self._guild(guild)
        member = g.members.pop(self._user(user).id)
        data = {"guild_id": str(g.id), "user": member.user.payload()}
        self.gateway.dispatch(
            "GUILD_MEMBER_REMOVE", data, guild_id=g.id, intent=Intent.GUILD_MEMBERS
        )

    def delete_channel(self, channel: ChannelArg) -> None:
        """Delete a channel (later REST calls get 10003 Unknown Channel)."""
        ch = self._channel(channel)
        del self.channels[ch.id]
        guild = self.guilds.get(ch.guild_id or 0)
        if guild is not None:
            guild.channels.pop(ch.id, None)
        self.gateway.dispatch(
            "CHANNEL_DELETE", ch.payload(), guild_id=ch.guild_id, intent=Intent.GUILDS
        )

    def set_permissions(
        self,
        channel: ChannelArg,
        *,
        send: bool | None = None,
        attach: bool | None = None,
        view: bool | None = None,
        embed: bool | None = None,
        history: bool | None = None,
        target: UserArg | None = None,
    ) -> None:
        """Allow (True) / deny (False) permissions for a member (default: the bot) in a channel."""
        ch = self._channel(channel)
        user_id = self._user(target).id if target is not None else self.bot_user.id
        overwrite = ch.overwrites.setdefault(user_id, Overwrite(user_id, 1))
        wanted = {
            Perm.SEND_MESSAGES: send,
            Perm.ATTACH_FILES: attach,
            Perm.VIEW_CHANNEL: view,
            Perm.EMBED_LINKS: embed,
            Perm.READ_MESSAGE_HISTORY: history,
        }
        for bit, allowed in wanted.items():
            if allowed is not None:
                overwrite.allow = overwrite.allow | bit if allowed else overwrite.allow & ~bit
                overwrite.deny = overwrite.deny & ~bit if allowed else overwrite.deny | bit
        self.gateway.dispatch(
            "CHANNEL_UPDATE", ch.payload(), guild_id=ch.guild_id, intent=Intent.GUILDS
        )

    def add_attachment(
        self, filename: str, data: bytes, content_type: str | None = None
    ) -> dict[str, Any]:
        """Register a file on the fake CDN; return its Discord attachment object."""
        return make_attachment(self, self._uploads_channel, filename, data, content_type).payload()

    def add_redirect_attachment(
        self, filename: str, location: str, content_type: str | None = "image/png", size: int = 1
    ) -> dict[str, Any]:
        """An attachment whose CDN link answers 302 to ``location`` (a hostile redirect)."""
        stored = make_attachment(self, self._uploads_channel, filename, b"", content_type)
        self.cdn_redirects[stored.id] = location
        return {**stored.payload(), "size": size}

    def hold_uploads(self, nonce: str | None = None) -> None:
        """Hold every message POST that carries files (only those with `nonce`, if given), after
        its body arrived, until released."""
        self._upload_gate = asyncio.Event()
        self._upload_nonce = nonce

    def release_uploads(self) -> None:
        """Let held uploads finish (they create their message); later ones pass at once."""
        if self._upload_gate is not None:
            self._upload_gate.set()
        self._upload_gate = None

    async def hold_upload(self, nonce: object = None) -> None:
        """Called by the message route: wait here while uploads (with this nonce) are held."""
        gate = self._upload_gate
        if gate is None or self._upload_nonce not in (None, str(nonce)):
            return
        self.held_uploads += 1
        self.signal.fire()
        await gate.wait()

    async def wait_upload_held(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``count`` uploads are being held."""
        await self.signal.wait_for(
            lambda: self.held_uploads >= count, timeout, f"{count} held upload(s)"
        )

    def shares_guild_with_bot(self, user: FakeUser) -> bool:
        """Return True if the user is in a guild with the bot (Discord requires it for DMs)."""
        return any(user.id in g.members for g in self.guilds.values())

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """Return (creating if needed) the bot's DM channel with ``user``."""
        for channel in self.channels.values():
            if channel.is_dm and channel.recipient is user:
                return channel
        channel = FakeChannel(self.next_id(), None, type=1, recipient=user)
        self.channels[channel.id] = channel
        return channel

    # argument resolution

    def _guild(self, guild: GuildArg) -> FakeGuild:
        """Resolve a guild argument."""
        return guild if isinstance(guild, FakeGuild) else self.guilds[int(guild)]

    def _channel(self, channel: ChannelArg) -> FakeChannel:
        """Resolve a channel argument."""
        return channel if isinstance(channel, FakeChannel) else self.channels[int(channel)]

    def _user(self, user: UserArg) -> FakeUser:
        """Resolve a user argument."""
        if isinstance(user, FakeMember):
            return user.user
        return user if isinstance(user, FakeUser) else self.users[int(user)]

    # lookups used by the route handlers

    def channel_or_404(self, channel_id: int) -> FakeChannel:
        """Return the channel or raise 10003 Unknown Channel."""
        channel = self.channels.get(channel_id)
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return channel

    def guild_or_404(self, guild_id: int) -> FakeGuild:
        """Return the guild or raise 10004 Unknown Guild."""
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise DiscordError(404, 10004, "Unknown Guild")
        return guild

    def bot_permissions(self, channel: FakeChannel) -> int:
        """Return the bot's effective permissions in a channel."""
        if channel.is_dm:
            return DM_PERMISSIONS
        return self.guilds[channel.guild_id or 0].permissions_in(channel, self.bot_user.id)

    def require(self, channel: FakeChannel, permission: int, *, code: int = 50013) -> None:
        """Raise 403 (50013 Missing Permissions / 50001 Missing Access) if the bot lacks a permission."""
        if self.bot_permissions(channel) & permission != permission:
            message = "Missing Access" if code == 50001 else "Missing Permissions"
            raise DiscordError(403, code, message)

    def upload_limit(self, channel: FakeChannel) -> int:
        """Return the upload size limit for a channel."""
        guild = self.guilds.get(channel.guild_id or 0)
        return guild.filesize_limit if guild is not None else DEFAULT_FILESIZE_LIMIT

    def interaction_upload_limit(self, interaction: FakeInteraction) -> int:
        """Return the upload limit advertised to an interaction."""
        return int(interaction.payload.get("attachment_size_limit", DEFAULT_FILESIZE_LIMIT))

    def interaction_by_token(self, token: str) -> FakeInteraction | None:
        """Return the interaction owning a webhook token."""
        return self._by_token.get(token)

    def token_expired(self, interaction: FakeInteraction) -> bool:
        """Return True once the 15-minute interaction token lifetime has passed."""
        return self.now() - interaction.created_at > INTERACTION_TOKEN_TTL

    def check_schema(self, operation: str, body: Any, *, raise_now: bool = True) -> FormErrors:
        """Validate a body against the OpenAPI schema of an operation."""
        errors = schema_errors(operation, body)
        if raise_now:
            errors.raise_if_any()
        return errors

    def cdn_urls(self, channel_id: int, attachment_id: int, filename: str) -> tuple[str, str]:
        """Return (url, proxy_url) for an attachment, signed like Discord's CDN links."""
        now = int(self.now())
        query = f"ex={now + 86400:x}&is={now:x}&hm={secrets.token_hex(32)}&"
        url = f"{self.base_url}{CDN_PREFIX}{channel_id}/{attachment_id}/{quote(filename)}?{query}"
        return url, url

    async def serve_attachment(self, request: web.Request) -> web.Response:
        """GET /attachments/{channel}/{id}/{filename}: the CDN stand-in."""
        raw = request.match_info["attachment_id"]
        stored = self.cdn.get(int(raw)) if raw.isdigit() else None
        if stored is None or stored.filename != request.match_info["filename"]:
            return web.Response(status=404, text="This content is no longer available.")
        if stored.id in self.cdn_redirects:
            raise web.HTTPFound(self.cdn_redirects[stored.id])
        content_type = stored.content_type or "application/octet-stream"
        self.cdn_downloads.append(stored.filename)
        return web.Response(body=stored.data, headers={"Content-Type": content_type})

    # commands

    @property
    def sync_calls(self) -> int:
        """Return how many times a command list was bulk-overwritten (PUT)."""
        return self.command_store.sync_calls

    def commands(self, guild: GuildArg | None = None) -> list[dict[str, Any]]:
        """Return the synced global (or guild) commands."""
        return self.command_store.listing(None if guild is None else self._guild(guild).id)

    def store_commands(
        self, incoming: list[dict[str, Any]], guild_id: int | None
    ) -> list[dict[str, Any]]:
        """Bulk-overwrite a command list (the PUT handlers call this)."""
        stored = self.command_store.bulk_overwrite(incoming, guild_id)
        self.signal.fire()
        return stored

    def find_command(self, name: str, guild_id: int | None, kind: int = 1) -> dict[str, Any]:
        """Return the synced command the Discord client would offer (guild first, then global)."""
        return self.command_store.find(name, guild_id, kind)

    # messages

    def messages(
        self, channel: ChannelArg, *, as_user: UserArg | None = None, include_deleted: bool = False
    ) -> list[FakeMessage]:
        """Return a channel's messages, oldest first (``as_user`` hides others' ephemerals)."""
        channel_id = channel.id if isinstance(channel, FakeChannel) else int(channel)
        viewer = self._user(as_user).id if as_user is not None else None
        return [
            m
            for m in self._messages.values()
            if m.channel_id == channel_id
            and (include_deleted or not m.deleted)
            and m.visible_for(viewer)
        ]

    def message_by_id(self, message_id: int) -> FakeMessage | None:
        """Return any stored message by id."""
        return self._messages.get(message_id)

    def nonce_hit(self, channel_id: int, payload: dict[str, Any]) -> FakeMessage | None:
        """Return the earlier message when ``enforce_nonce`` repeats a recent nonce."""
        nonce = payload.get("nonce")
        if nonce is None or not payload.get("enforce_nonce"):
            return None
        hit = self._nonces.get((channel_id, self.bot_user.id, str(nonce)))
        if hit is None or self.now() - hit[1] > NONCE_WINDOW:
            return None
        message = self._messages.get(hit[0])
        return message if message is not None and not message.deleted else None

    def store_message(self, message: FakeMessage) -> None:
        """Store a new message, wake waiters and dispatch MESSAGE_CREATE."""
        self._messages[message.id] = message
        channel = self.channels.get(message.channel_id)
        if channel is not None and not message.ephemeral:
            channel.last_message_id = message.id
        if message.nonce is not None:
            self._nonces[(message.channel_id, message.author.id, str(message.nonce))] = (
                message.id,
                self.now(),
            )
        self.signal.fire()
        self._dispatch_message("MESSAGE_CREATE", message)

    def message_updated(self, message: FakeMessage) -> None:
        """Wake waiters and dispatch MESSAGE_UPDATE after an edit."""
        self.signal.fire()
        self._dispatch_message("MESSAGE_UPDATE", message)

    def message_deleted(self, message: FakeMessage) -> None:
        """Mark deleted, wake waiters and dispatch MESSAGE_DELETE."""
        message.deleted = True
        self.signal.fire()
        if message.ephemeral:
            return
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        self.gateway.dispatch(
            "MESSAGE_DELETE", data, guild_id=message.guild_id, intent=self._message_intent(message)
        )

    def _message_intent(self, message: FakeMessage) -> int:
        """Return the intent that gates events for this message."""
        return int(Intent.DIRECT_MESSAGES if message.guild_id is None else Intent.GUILD_MESSAGES)

    def _dispatch_message(self, event: str, message: FakeMessage) -> list[asyncio.Future[float]]:
        """Dispatch a message event; ephemeral messages never reach the gateway."""
        if message.ephemeral:
            return []
        guild = self.guilds.get(message.guild_id or 0)
        member = guild.member(message.author.id) if guild is not None else None
        data = message.payload(member)

        def shape(session: GatewaySession, payload: dict[str, Any]) -> dict[str, Any]:
            """Blank content for sessions without MESSAGE_CONTENT, like Discord."""
            if session.has(Intent.MESSAGE_CONTENT) or self._content_exempt(message):
                return payload
            return {**payload, "content": "", "embeds": [], "attachments": [], "components": []}

        return self.gateway.dispatch(
            event,
            data,
            guild_id=message.guild_id,
            intent=self._message_intent(message),
            shape=shape,
        )

    def _content_exempt(self, message: FakeMessage) -> bool:
        """Return True if a bot without MESSAGE_CONTENT still sees this message's content."""
        mentions_bot = any(u.id == self.bot_user.id for u in message.mentions)
        return message.guild_id is None or message.author.id == self.bot_user.id or mentions_bot

    # waiting

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the bot identified and received READY and every GUILD_CREATE."""
        await self.signal.wait_for(lambda: self.gateway.ready, timeout, "the bot to become ready")

    async def wait_shards_ready(
        self, count: int, ids: Iterable[int] | None = None, timeout: float = 10.0
    ) -> None:
        """Wait until sessions for shards `ids` (all of `count` by default) are ready."""
        wanted = {(i, count) for i in (range(count) if ids is None else ids)}
        await self.signal.wait_for(
            lambda: wanted <= self.gateway.ready_shards(),
            timeout,
            f"shards {sorted(i for i, _ in wanted)} of {count} to become ready",
        )

    def add_guild_on_shard(self, shard_id: int, count: int, **options: Any) -> FakeGuild:
        """Create a guild whose id maps to shard `shard_id` of `count` ((id >> 22) % count)."""
        return self.add_guild(self.next_id.on_shard(shard_id, count), **options)

    async def wait_resumed(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until the bot has RESUMEd ``count`` times in total."""
        await self.signal.wait_for(
            lambda: self.gateway.resumes >= count, timeout, f"{count} resume(s)"
        )

    async def wait_for_message(
        self,
        predicate: MessagePredicate | None = None,
        *,
        channel: ChannelArg | None = None,
        timeout: float = 5.0,
    ) -> FakeMessage:
        """Wait for a stored (existing or future) live message matching ``predicate``."""
        return await self._wait_message(predicate, channel, timeout, edited=False)

    async def wait_for_edit(
        self,
        predicate: MessagePredicate | None = None,
        *,
        channel: ChannelArg | None = None,
        timeout: float = 5.0,
    ) -> FakeMessage:
        """Wait for an edited live message matching ``predicate`` (checked after each edit)."""
        return await self._wait_message(predicate, channel, timeout, edited=True)

    async def _wait_message(
        self,
        predicate: MessagePredicate | None,
        channel: ChannelArg | None,
        timeout: float,
        *,
        edited: bool,
    ) -> FakeMessage:
        """Shared waiting logic for messages and edits."""
        check = predicate or (lambda _m: True)
        channel_id = None if channel is None else self._channel_id(channel)

        def probe() -> FakeMessage | None:
            """Return the first matching message."""
            for message in self._messages.values():
                if message.deleted or (edited and not message.edits):
                    continue
                if channel_id is None or message.channel_id == channel_id:
                    if check(message):
                        return message
            return None

        return await self.signal.wait_for(
            probe, timeout, "an edited message" if edited else "a message"
        )

    def _channel_id(self, channel: ChannelArg) -> int:
        """Return a channel id from an object or id (deleted channels included)."""
        return channel.id if isinstance(channel, FakeChannel) else int(channel)

    # events from users

    def dispatch(
        self, event: str, data: dict[str, Any], *, guild_id: int | None = None
    ) -> list[asyncio.Future[float]]:
        """Send an arbitrary gateway event to the bot."""
        return self.gateway.dispatch(event, data, guild_id=guild_id)

    async def _deliver(self, futures: list[asyncio.Future[float]], what: str) -> float:
        """Wait until a dispatch was written to the bot's websocket; return the send time."""
        if not futures:
            raise RuntimeError(
                f"cannot deliver {what}: no bot session is connected to the fake gateway"
            )
        return await _first_sent(futures)

    async def _send_interaction(self, interaction: FakeInteraction) -> FakeInteraction:
        """Register and dispatch INTERACTION_CREATE."""
        self.interactions[interaction.id] = interaction
        self._by_token[interaction.token] = interaction
        futures = self.gateway.dispatch(
            "INTERACTION_CREATE", interaction.payload, guild_id=interaction.guild_id
        )
        interaction.dispatched_at = await self._deliver(futures, "INTERACTION_CREATE")
        return interaction

    async def slash(
        self,
        guild: GuildArg | None,
        channel: ChannelArg,
        user: UserArg,
        name: str,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
        attachments: Mapping[str, Any] | None = None,
    ) -> FakeInteraction:
        """Invoke a synced slash command as ``user`` (options by name; attachments by option name)."""
        g = self._guild(guild) if guild is not None else None
        ch, u = self._channel(channel), self._user(user)
        command = self.find_command(name, g.id if g else None, 1)
        check_can_use(command, g, ch, u, name in self.visibility_overrides)
        values = {**(options or {}), **(attachments or {})}
        opts, resolved = command_options(
            self, command, guild=g, channel=ch, subcommand=subcommand, group=group, values=values
        )
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": 1}
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        interaction = build_interaction(
            self, itype=INTERACTION_APPLICATION_COMMAND, data=data, guild=g, channel=ch, user=u
        )
        interaction.name, interaction.command_type = name, 1
        return await self._send_interaction(interaction)

    async def autocomplete(
        self,
        guild: GuildArg | None,
        channel: ChannelArg,
        user: UserArg,
        name: str,
        *,
        subcommand: str,
        option: str,
        typed: str = "",
        filled: dict[str, Any] | None = None,
    ) -> FakeInteraction:
        """Type into an autocomplete option of a subcommand: Discord sends what was typed so far
        (a string, whatever the option's type), marked ``focused``, with the options already
        `filled` in; the bot answers with choices."""
        g = self._guild(guild) if guild is not None else None
        ch, u = self._channel(channel), self._user(user)
        command = self.find_command(name, g.id if g else None, 1)
        check_can_use(command, g, ch, u, name in self.visibility_overrides)
        [sub] = [o for o in command.get("options") or [] if o["name"] == subcommand]
        [spec] = [o for o in sub.get("options") or [] if o["name"] == option]
        if not spec.get("autocomplete"):
            raise ValueError(f"option {option!r} of /{name} {subcommand} has no autocomplete")
        focused = {"type": spec["type"], "name": option, "value": typed, "focused": True}
        types = {o["name"]: o["type"] for o in sub.get("options") or []}
        given = [{"type": types[k], "name": k, "value": v} for k, v in (filled or {}).items()]
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": [{"type": 1, "name": subcommand, "options": [*given, focused]}],
        }
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        interaction = build_interaction(
            self, itype=INTERACTION_AUTOCOMPLETE, data=data, guild=g, channel=ch, user=u
        )
        interaction.name, interaction.command_type = name, 1
        return await self._send_interaction(interaction)

    async def context_menu(
        self,
        guild: GuildArg | None,
        channel: ChannelArg,
        user: UserArg,
        name: str,
        target_message: FakeMessage | None = None,
        *,
        target_user: UserArg | None = None,
    ) -> FakeInteraction:
        """Invoke a message (or, with ``target_user``, user) context-menu command."""
        g = self._guild(guild) if guild is not None else None
        ch, u = self._channel(channel), self._user(user)
        kind = 2 if target_user is not None else 3
        command = self.find_command(name, g.id if g else None, kind)
        check_can_use(command, g, ch, u, name in self.visibility_overrides)
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": kind}
        data.update(self._context_target(g, target_message, target_user))
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        interaction = build_interaction(
            self, itype=INTERACTION_APPLICATION_COMMAND, data=data, guild=g, channel=ch, user=u
        )
        interaction.name, interaction.command_type = name, kind
        return await self._send_interaction(interaction)

    def _context_target(
        self, guild: FakeGuild | None, message: FakeMessage | None, target: UserArg | None
    ) -> dict[str, Any]:
        """Build ``target_id`` + ``resolved`` for a context-menu command."""
        if message is not None:
            resolved = {"messages": {str(message.id): message.payload()}}
            return {"target_id": str(message.id), "resolved": resolved}
        if target is None:
            raise ValueError("context_menu needs target_message or target_user")
        user = self._user(target)
        resolved: dict[str, Any] = {"users": {str(user.id): user.payload()}}
        member = guild.member(user.id) if guild is not None else None
        if member is not None:
            resolved["members"] = {str(user.id): member.payload(with_user=False)}
        return {"target_id": str(user.id), "resolved": resolved}

    async def click(
        self,
        guild: GuildArg | None,
        channel: ChannelArg,
        user: UserArg,
        message: FakeMessage | int,
        custom_id: str,
        *,
        values: list[str] | None = None,
    ) -> FakeInteraction:
        """Click a button (or pick ``values`` in a select) on a message."""
        g = self._guild(guild) if guild is not None else None
        ch, u = self._channel(channel), self._user(user)
        msg = message if isinstance(message, FakeMessage) else self._messages[int(message)]
        if msg.deleted or not msg.visible_for(u.id):
            raise ValueError(f"{u.username} cannot see message {msg.id}")
        data = component_data(find_component(msg, custom_id), values)
        interaction = build_interaction(
            self, itype=INTERACTION_COMPONENT, data=data, guild=g, channel=ch, user=u, message=msg
        )
        return await self._send_interaction(interaction)

    async def submit_modal(
        self,
        source: FakeInteraction | str,
        user: UserArg | None,
        values: Mapping[str, Any],
    ) -> FakeInteraction:
        """Submit the modal the bot opened (by interaction handle or modal custom_id)."""
        origin = self._modal_origin(source)
        modal = origin.modal
        if modal is None:
            raise ValueError(f"interaction {origin.id} did not open a modal")
        g = self.guilds.get(origin.guild_id or 0)
        ch = self.channels[origin.channel_id]
        u = self._user(user) if user is not None else origin.user
        data = modal_submit_data(modal, values)
        interaction = build_interaction(
            self,
            itype=INTERACTION_MODAL_SUBMIT,
            data=data,
            guild=g,
            channel=ch,
            user=u,
            message=origin.source_message,
        )
        return await self._send_interaction(interaction)

    def _modal_origin(self, source: FakeInteraction | str) -> FakeInteraction:
        """Find the interaction that opened a modal."""
        if isinstance(source, FakeInteraction):
            return source
        for interaction in reversed(list(self.interactions.values())):
            if interaction.modal is not None and interaction.modal.get("custom_id") == source:
                return interaction
        raise LookupError(f"no modal with custom_id {source!r} was opened")

    async def user_message(
        self,
        guild: GuildArg | None,
        channel: ChannelArg,
        author: UserArg,
        content: str = "",
        *,
        attachments: Sequence[dict[str, Any]] = (),
        mentions: Sequence[UserArg] = (),
        reply_to: FakeMessage | None = None,
        ping_reply: bool = True,
        flags: int = 0,
    ) -> FakeMessage:
        """Post a message as a user (MESSAGE_CREATE, subject to intents); return it.

        ``reply_to`` makes it a reply (type 19, with ``referenced_message``); like Discord's
        client, the replied-to author is pinged unless ``ping_reply`` is False. ``flags``:
        e.g. 8192 IS_VOICE_MESSAGE.
        """
        g = self._guild(guild) if guild is not None else None
        ch, u = self._channel(channel), self._user(author)
        if g is not None and g.member(u.id) is None:
            raise ValueError(f"{u.username} is not a member of {g.name}")
        pinged = {x.id: x for x in mentioned_users(self, content, None)}
        pinged.update({self._user(m).id: self._user(m) for m in mentions})
        if reply_to is not None and ping_reply:
            pinged[reply_to.author.id] = reply_to.author
        message = FakeMessage(
            id=self.next_id(),
            channel_id=ch.id,
            guild_id=g.id if g else None,
            author=u,
            created_at=self.now(),
            content=content,
            files=[self.cdn[int(a["id"])] for a in attachments],
            mentions=list(pinged.values()),
            flags=flags,
        )
        if reply_to is not None:
            message.type = 19
            message.referenced = reply_to
            message.message_reference = {
                "type": 0,
                "message_id": str(reply_to.id),
                "channel_id": str(reply_to.channel_id),
                **({"guild_id": str(reply_to.guild_id)} if reply_to.guild_id else {}),
            }
        self._messages[message.id] = message
        ch.last_message_id = message.id
        self.signal.fire()
        futures = self._dispatch_message("MESSAGE_CREATE", message)
        if futures:
            await _first_sent(futures)
        return message

    # fault injection

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        code: int = 0,
        message: str = "",
        retry_after: float | None = None,
        times: int = 1,
        global_: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests (path below the API base) with an error."""
        pattern = re.compile(path_regex)
        self.faults.add(
            Fault(method.upper(), pattern, status, code, message, retry_after, times, global_)
        )

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT (discord.py reconnects to resume_gateway_url and RESUMEs)."""
        await self.gateway.request_reconnect()

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION."""
        await self.gateway.invalidate_sessions(resumable=resumable)

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close the bot's websocket from the server side."""
        await self.gateway.drop_connections(code)

    def reset_records(self) -> None:
        """Forget recorded requests, callbacks and errors (state is kept)."""
        self._init_records()


async def _first_sent(futures: list[asyncio.Future[float]]) -> float:
    """The send time of the first session that wrote the event (a detached session never does)."""
    done, _ = await asyncio.wait(
        futures, timeout=DISPATCH_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
    )
    if not done:
        raise TimeoutError("no connected bot session took the event")
    return next(iter(done)).result()
