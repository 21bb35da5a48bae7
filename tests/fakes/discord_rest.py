"""REST routes for bot-token endpoints: users, gateway, commands, channels, messages, guilds, CDN."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_commands import command_errors
from .discord_messages import (
    Body,
    apply_edit,
    check_upload_size,
    new_message,
    read_body,
    validate_message,
)
from .discord_state import FakeChannel, FakeMessage, Perm
from .discord_validation import DiscordError, FormErrors

if TYPE_CHECKING:
    from .discord import FakeDiscord


def json_response(data: Any, status: int = 200) -> web.Response:
    """Answer JSON with Content-Type exactly 'application/json' (discord.py requires that)."""
    body = json.dumps(data).encode()
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


def no_content() -> web.Response:
    """Answer 204 No Content."""
    return web.Response(status=204)


def snowflake(request: web.Request, key: str) -> int:
    """Read a snowflake path parameter (404 if it is not one)."""
    value = request.match_info[key]
    if not value.isdigit():
        raise DiscordError(404, 0, "404: Not Found")
    return int(value)


class RestApi:
    """Handlers for the bot-authenticated REST endpoints."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Attach to the fake whose state is served."""
        self.fake = fake

    def routes(self, api: str) -> list[web.RouteDef]:
        """Return the route table below the API prefix."""
        return [
            web.get(f"{api}/gateway", self.get_gateway),
            web.get(f"{api}/gateway/bot", self.get_gateway_bot),
            web.get(f"{api}/users/@me", self.get_me),
            web.post(f"{api}/users/@me/channels", self.create_dm),
            web.get(f"{api}/users/{{user_id}}", self.get_user),
            web.get(f"{api}/oauth2/applications/@me", self.get_application),
            web.get(f"{api}/applications/{{app_id}}/commands", self.get_commands),
            web.put(f"{api}/applications/{{app_id}}/commands", self.put_commands),
            web.get(
                f"{api}/applications/{{app_id}}/guilds/{{guild_id}}/commands", self.get_commands
            ),
            web.put(
                f"{api}/applications/{{app_id}}/guilds/{{guild_id}}/commands", self.put_commands
            ),
            web.get(f"{api}/channels/{{channel_id}}", self.get_channel),
            web.post(f"{api}/channels/{{channel_id}}/typing", self.typing),
            web.get(f"{api}/channels/{{channel_id}}/messages", self.list_messages),
            web.post(f"{api}/channels/{{channel_id}}/messages", self.create_message),
            web.get(f"{api}/channels/{{channel_id}}/messages/{{message_id}}", self.get_message),
            web.patch(f"{api}/channels/{{channel_id}}/messages/{{message_id}}", self.edit_message),
            web.delete(
                f"{api}/channels/{{channel_id}}/messages/{{message_id}}", self.delete_message
            ),
            web.get(f"{api}/guilds/{{guild_id}}", self.get_guild),
            web.get(f"{api}/guilds/{{guild_id}}/channels", self.get_guild_channels),
            web.get(f"{api}/guilds/{{guild_id}}/members/{{user_id}}", self.get_member),
        ]

    # identity and gateway

    async def get_gateway(self, _request: web.Request) -> web.Response:
        """GET /gateway."""
        return json_response({"url": self.fake.gateway_url})

    async def get_gateway_bot(self, _request: web.Request) -> web.Response:
        """GET /gateway/bot."""
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return json_response(
            {
                "url": self.fake.gateway_url,
                "shards": self.fake.gateway.recommended_shards(),
                "session_start_limit": limit,
            }
        )

    async def get_me(self, _request: web.Request) -> web.Response:
        """GET /users/@me."""
        data = self.fake.bot_user.payload()
        data.update(verified=True, mfa_enabled=False, email=None, locale="en-US")
        return json_response(data)

    async def get_user(self, request: web.Request) -> web.Response:
        """GET /users/{id}."""
        user = self.fake.users.get(snowflake(request, "user_id"))
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return json_response(user.payload())

    async def get_application(self, _request: web.Request) -> web.Response:
        """GET /oauth2/applications/@me."""
        return json_response(self._application())

    def _application(self) -> dict[str, Any]:
        """Return the GET /oauth2/applications/@me object."""
        fake = self.fake
        return {
            "id": str(fake.application_id),
            "name": fake.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": fake.app_owner.payload(),
            "team": None,
            "bot": fake.bot_user.payload(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(fake.guilds),
            "integration_types_config": {"0": {}},
        }

    # commands

    def _command_scope(self, request: web.Request) -> int | None:
        """Check the application id and return the guild id (None = global)."""
        if snowflake(request, "app_id") != self.fake.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        if "guild_id" not in request.match_info:
            return None
        guild_id = snowflake(request, "guild_id")
        if guild_id not in self.fake.guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return guild_id

    async def get_commands(self, request: web.Request) -> web.Response:
        """GET the global or guild command list."""
        return json_response(self.fake.commands(self._command_scope(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        """PUT (bulk overwrite) the global or guild command list."""
        guild_id = self._command_scope(request)
        body = await read_body(request)
        operation = "bulk_set_commands" if guild_id is None else "bulk_set_guild_commands"
        self.fake.check_schema(operation, body.payload)
        incoming = body.payload or []
        command_errors(incoming).raise_if_any()
        return json_response(self.fake.store_commands(incoming, guild_id))

    # channels

    async def get_channel(self, request: web.Request) -> web.Response:
        """GET /channels/{id}."""
        channel = self.fake.channel_or_404(snowflake(request, "channel_id"))
        self.fake.require(channel, Perm.VIEW_CHANNEL, code=50001)
        return json_response(channel.payload())

    async def typing(self, request: web.Request) -> web.Response:
        """POST /channels/{id}/typing."""
        channel = self.fake.channel_or_404(snowflake(request, "channel_id"))
        self.fake.require(channel, Perm.SEND_MESSAGES)
        return no_content()

    async def create_dm(self, request: web.Request) -> web.Response:
        """POST /users/@me/channels: open (or reuse) a DM channel."""
        payload = (await read_body(request)).message()
        raw = str(payload.get("recipient_id", ""))
        user = self.fake.users.get(int(raw)) if raw.isdigit() else None
        if user is None or user.bot:
            raise DiscordError(400, 50033, "Invalid Recipient(s)")
        return json_response(self.fake.dm_channel(user).payload())

    # messages

    async def create_message(self, request: web.Request) -> web.Response:
        """POST /channels/{id}/messages (JSON or multipart)."""
        channel = self.fake.channel_or_404(snowflake(request, "channel_id"))
        self.fake.require(channel, Perm.SEND_MESSAGES)
        body = await read_body(request)
        payload = body.message()
        errors = self.fake.check_schema("create_message", payload, raise_now=False)
        validate_message(payload, body, errors)
        if body.uploads or payload.get("attachments"):
            self.fake.require(channel, Perm.ATTACH_FILES)
        check_upload_size(body, self.fake.upload_limit(channel))
        self._check_dm_open(channel)
        if body.uploads:
            await self.fake.hold_upload(payload.get("nonce"))
        existing = self.fake.nonce_hit(channel.id, payload)
        if existing is not None:
            return json_response(existing.payload())
        message = self._build(channel, body)
        self.fake.store_message(message)
        return json_response(message.payload())

    def _check_dm_open(self, channel: FakeChannel) -> None:
        """Answer 50007 when the recipient refuses DMs or shares no guild with the bot."""
        recipient = channel.recipient if channel.is_dm else None
        if recipient is not None and (
            not recipient.accepts_dms or not self.fake.shares_guild_with_bot(recipient)
        ):
            raise DiscordError(403, 50007, "Cannot send messages to this user")

    def _build(self, channel: FakeChannel, body: Body) -> FakeMessage:
        """Create the message object, resolving a reply reference."""
        message = new_message(
            self.fake,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=self.fake.bot_user,
            body=body,
        )
        reference = body.message().get("message_reference")
        if reference:
            self._attach_reference(message, reference)
        return message

    def _attach_reference(self, message: FakeMessage, reference: dict[str, Any]) -> None:
        """Turn the message into a reply (type 19) after checking the target exists."""
        target = self.fake.message_by_id(int(reference.get("message_id") or 0))
        if target is None or target.deleted or target.ephemeral:
            if reference.get("fail_if_not_exists", True):
                errors = FormErrors()
                errors.add(
                    ["message_reference"], "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
                errors.raise_if_any()
            return
        message.type = 19
        message.message_reference = {
            "type": 0,
            "message_id": str(target.id),
            "channel_id": str(target.channel_id),
            "guild_id": None if target.guild_id is None else str(target.guild_id),
        }

    def _visible_message(self, request: web.Request) -> tuple[FakeChannel, FakeMessage]:
        """Resolve channel + message ids, hiding ephemeral and deleted messages (10008)."""
        channel = self.fake.channel_or_404(snowflake(request, "channel_id"))
        self.fake.require(channel, Perm.VIEW_CHANNEL, code=50001)
        message = self.fake.message_by_id(snowflake(request, "message_id"))
        if (
            message is None
            or message.channel_id != channel.id
            or message.deleted
            or message.ephemeral
        ):
            raise DiscordError(404, 10008, "Unknown Message")
        return channel, message

    async def get_message(self, request: web.Request) -> web.Response:
        """GET /channels/{id}/messages/{mid}."""
        _channel, message = self._visible_message(request)
        return json_response(message.payload())

    async def list_messages(self, request: web.Request) -> web.Response:
        """GET /channels/{id}/messages (newest first; limit/before/after/around)."""
        channel = self.fake.channel_or_404(snowflake(request, "channel_id"))
        self.fake.require(channel, Perm.VIEW_CHANNEL, code=50001)
        if not self.fake.bot_permissions(channel) & Perm.READ_MESSAGE_HISTORY:
            return json_response([])
        found = [m for m in self.fake.messages(channel.id) if not m.ephemeral]
        page = _page(found, request.query)
        return json_response([m.payload() for m in page])

    async def edit_message(self, request: web.Request) -> web.Response:
        """PATCH /channels/{id}/messages/{mid}."""
        channel, message = self._visible_message(request)
        if message.author.id != self.fake.bot_user.id:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        body = await read_body(request)
        self.fake.check_schema("update_message", body.payload)
        check_upload_size(body, self.fake.upload_limit(channel))
        apply_edit(self.fake, message, body)
        self.fake.message_updated(message)
        return json_response(message.payload())

    async def delete_message(self, request: web.Request) -> web.Response:
        """DELETE /channels/{id}/messages/{mid}."""
        channel, message = self._visible_message(request)
        if message.author.id != self.fake.bot_user.id:
            self.fake.require(channel, Perm.MANAGE_MESSAGES)
        self.fake.message_deleted(message)
        return no_content()

    # guilds

    async def get_guild(self, request: web.Request) -> web.Response:
        """GET /guilds/{id}."""
        guild = self.fake.guild_or_404(snowflake(request, "guild_id"))
        data = guild.payload()
        if request.query.get("with_counts", "").lower() in ("1", "true"):
            data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return json_response(data)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        """GET /guilds/{id}/channels."""
        guild = self.fake.guild_or_404(snowflake(request, "guild_id"))
        return json_response([c.payload() for c in guild.channels.values()])

    async def get_member(self, request: web.Request) -> web.Response:
        """GET /guilds/{id}/members/{user_id}."""
        guild = self.fake.guild_or_404(snowflake(request, "guild_id"))
        member = guild.member(snowflake(request, "user_id"))
        if member is None:
            raise DiscordError(404, 10007, "Unknown Member")
        return json_response(member.payload())


def _page(messages: list[FakeMessage], query: Any) -> list[FakeMessage]:
    """Apply Discord's message-history paging parameters."""
    limit = max(1, min(100, int(query.get("limit", 50))))
    newest_first = sorted(messages, key=lambda m: m.id, reverse=True)
    if "before" in query:
        return [m for m in newest_first if m.id < int(query["before"])][:limit]
    if "after" in query:
        oldest_first = [m for m in reversed(newest_first) if m.id > int(query["after"])][:limit]
        return list(reversed(oldest_first))
    if "around" in query:
        pivot = int(query["around"])
        older = [m for m in newest_first if m.id <= pivot][: (limit + 1) // 2]
        newer = [m for m in reversed(newest_first) if m.id > pivot][: limit // 2]
        return [*reversed(newer), *older]
    return newest_first[:limit]
