"""Interaction callbacks and the interaction webhook (follow-ups, @original)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_messages import (
    ARRIVED_AT,
    Body,
    apply_edit,
    check_upload_size,
    new_message,
    read_body,
    validate_message,
)
from .discord_rest import json_response, no_content, snowflake
from .discord_state import (
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    INTERACTION_PING,
    MESSAGE_FLAG_EPHEMERAL,
    MESSAGE_FLAG_LOADING,
    FakeInteraction,
    FakeMessage,
    RecordedCallback,
)
from .discord_validation import DiscordError, FormErrors

if TYPE_CHECKING:
    from .discord import FakeDiscord

CB_PONG = 1
CB_MESSAGE = 4
CB_DEFERRED_MESSAGE = 5
CB_DEFERRED_UPDATE = 6
CB_UPDATE = 7
CB_AUTOCOMPLETE = 8
CB_MODAL = 9

ALLOWED_CALLBACKS: dict[int, tuple[int, ...]] = {
    INTERACTION_PING: (CB_PONG,),
    INTERACTION_APPLICATION_COMMAND: (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_MODAL),
    INTERACTION_COMPONENT: (
        CB_MESSAGE,
        CB_DEFERRED_MESSAGE,
        CB_DEFERRED_UPDATE,
        CB_UPDATE,
        CB_MODAL,
    ),
    INTERACTION_AUTOCOMPLETE: (CB_AUTOCOMPLETE,),
    INTERACTION_MODAL_SUBMIT: (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE),
}


def _truthy(value: str | None) -> bool:
    """Interpret a boolean query parameter."""
    return (value or "").lower() in ("1", "true")


class InteractionApi:
    """Handlers for /interactions/.../callback and /webhooks/{app}/{token}/..."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Attach to the fake whose state is served."""
        self.fake = fake

    def routes(self, api: str) -> list[web.RouteDef]:
        """Return the route table below the API prefix."""
        hook = f"{api}/webhooks/{{app_id}}/{{token}}"
        return [
            web.post(f"{api}/interactions/{{interaction_id}}/{{token}}/callback", self.callback),
            web.post(hook, self.execute),
            web.get(f"{hook}/messages/{{message_id}}", self.get_message),
            web.patch(f"{hook}/messages/{{message_id}}", self.edit_message),
            web.delete(f"{hook}/messages/{{message_id}}", self.delete_message),
        ]

    # callback

    async def callback(self, request: web.Request) -> web.Response:
        """POST /interactions/{id}/{token}/callback."""
        interaction = self._callback_target(request)
        body = await read_body(request)
        payload = body.message()
        self.fake.check_schema("interaction_callback", payload)
        kind = int(payload["type"])
        _check_allowed(interaction, kind)
        data = payload.get("data") or {}
        message = await self._respond(interaction, kind, data, body)
        self._record(interaction, payload, kind, request[ARRIVED_AT])
        if _truthy(request.query.get("with_response")):
            return json_response(_callback_resource(interaction, kind, message))
        return no_content()

    def _callback_target(self, request: web.Request) -> FakeInteraction:
        """Find the interaction, enforcing token, single acknowledgement and the 3 s deadline."""
        interaction = self.fake.interactions.get(snowflake(request, "interaction_id"))
        if interaction is None or interaction.token != request.match_info["token"]:
            raise DiscordError(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        if self.fake.now() - interaction.created_at > self.fake.ack_deadline:
            raise DiscordError(404, 10062, "Unknown interaction")
        return interaction

    async def _respond(
        self, interaction: FakeInteraction, kind: int, data: dict[str, Any], body: Body
    ) -> FakeMessage | None:
        """Carry out the callback; return the message it created or updated."""
        if kind == CB_MESSAGE:
            return self._reply(interaction, Body(data, body.uploads))
        if kind == CB_DEFERRED_MESSAGE:
            return self._defer(interaction, data)
        if kind in (CB_DEFERRED_UPDATE, CB_UPDATE):
            return self._update(interaction, kind, Body(data, body.uploads))
        if kind == CB_MODAL:
            interaction.modal = data
        return None

    def _reply(self, interaction: FakeInteraction, body: Body) -> FakeMessage:
        """CHANNEL_MESSAGE_WITH_SOURCE: create the response message."""
        validate_message(body.message(), body)
        check_upload_size(body, self.fake.interaction_upload_limit(interaction))
        message = self._interaction_message(interaction, body)
        interaction.original = message
        return message

    def _defer(self, interaction: FakeInteraction, data: dict[str, Any]) -> FakeMessage:
        """DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: create the 'thinking…' placeholder."""
        flags = MESSAGE_FLAG_LOADING | (int(data.get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL)
        message = self._interaction_message(interaction, Body({}), flags=flags)
        interaction.original = message
        interaction.deferred_pending = True
        return message

    def _update(self, interaction: FakeInteraction, kind: int, body: Body) -> FakeMessage | None:
        """DEFERRED_UPDATE_MESSAGE / UPDATE_MESSAGE on the message that holds the component."""
        source = interaction.source_message
        if source is None:
            raise _bad_type(kind, ALLOWED_CALLBACKS[INTERACTION_APPLICATION_COMMAND])
        interaction.original = source
        if kind == CB_UPDATE:
            check_upload_size(body, self.fake.interaction_upload_limit(interaction))
            apply_edit(self.fake, source, body)
            self.fake.message_updated(source)
        return source

    def _interaction_message(
        self, interaction: FakeInteraction, body: Body, flags: int | None = None
    ) -> FakeMessage:
        """Create and store a message sent through an interaction."""
        message = new_message(
            self.fake,
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            author=self.fake.bot_user,
            body=body,
            webhook_id=self.fake.application_id,
            application_id=self.fake.application_id,
            type=_message_type(interaction),
            interaction_metadata=_metadata(interaction),
        )
        requested = int(body.message().get("flags") or 0) if flags is None else flags
        message.flags |= requested & (MESSAGE_FLAG_EPHEMERAL | MESSAGE_FLAG_LOADING)
        if message.ephemeral:
            message.visible_to = interaction.user.id
        interaction.responses.append(message)
        self.fake.store_message(message)
        return message

    def _record(
        self, interaction: FakeInteraction, payload: dict[str, Any], kind: int, at: float
    ) -> None:
        """Record an accepted callback."""
        interaction.callback, interaction.callback_type, interaction.callback_at = payload, kind, at
        self.fake.callbacks.append(RecordedCallback(interaction.id, kind, payload, at))
        self.fake.signal.fire()

    # webhook

    def _hook_target(self, request: web.Request) -> FakeInteraction:
        """Find the interaction behind a webhook token (401 50027 once expired)."""
        interaction = self.fake.interaction_by_token(request.match_info["token"])
        expired = interaction is not None and self.fake.token_expired(interaction)
        if (
            interaction is None
            or expired
            or snowflake(request, "app_id") != self.fake.application_id
        ):
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        if not interaction.acknowledged:
            raise DiscordError(404, 10015, "Unknown Webhook")
        return interaction

    async def execute(self, request: web.Request) -> web.Response:
        """POST /webhooks/{app}/{token}: a follow-up message."""
        interaction = self._hook_target(request)
        body = await read_body(request)
        payload = body.message()
        errors = self.fake.check_schema("execute_webhook", payload, raise_now=False)
        validate_message(payload, body, errors)
        check_upload_size(body, self.fake.interaction_upload_limit(interaction))
        message = self._followup(interaction, body)
        if _truthy(request.query.get("wait")):
            return json_response(message.payload())
        return no_content()

    def _followup(self, interaction: FakeInteraction, body: Body) -> FakeMessage:
        """Complete a pending deferral (keeping its ephemeral flag) or create a new message."""
        placeholder = interaction.original
        if interaction.deferred_pending and placeholder is not None and not placeholder.deleted:
            self._complete(interaction, placeholder, body)
            return placeholder
        return self._interaction_message(interaction, body)

    def _complete(self, interaction: FakeInteraction, message: FakeMessage, body: Body) -> None:
        """Turn the 'thinking…' placeholder into the real message."""
        apply_edit(self.fake, message, body)
        message.flags &= ~MESSAGE_FLAG_LOADING
        message.edited_at = None
        interaction.deferred_pending = False
        self.fake.message_updated(message)

    def _hook_message(self, interaction: FakeInteraction, request: web.Request) -> FakeMessage:
        """Resolve @original or a follow-up id to a message of this interaction."""
        raw = request.match_info["message_id"]
        if raw == "@original":
            message = interaction.original
        else:
            wanted = int(raw) if raw.isdigit() else -1
            candidates = [
                *interaction.responses,
                *([interaction.original] if interaction.original else []),
            ]
            message = next((m for m in candidates if m.id == wanted), None)
        if message is None or message.deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def get_message(self, request: web.Request) -> web.Response:
        """GET /webhooks/{app}/{token}/messages/{id}."""
        interaction = self._hook_target(request)
        return json_response(self._hook_message(interaction, request).payload())

    async def edit_message(self, request: web.Request) -> web.Response:
        """PATCH /webhooks/{app}/{token}/messages/{id|@original}."""
        interaction = self._hook_target(request)
        message = self._hook_message(interaction, request)
        body = await read_body(request)
        original = request.match_info["message_id"] == "@original"
        operation = "update_original_webhook_message" if original else "update_webhook_message"
        self.fake.check_schema(operation, body.payload)
        check_upload_size(body, self.fake.interaction_upload_limit(interaction))
        if message.loading:
            self._complete(interaction, message, body)
        else:
            apply_edit(self.fake, message, body)
            self.fake.message_updated(message)
        return json_response(message.payload())

    async def delete_message(self, request: web.Request) -> web.Response:
        """DELETE /webhooks/{app}/{token}/messages/{id|@original}."""
        interaction = self._hook_target(request)
        message = self._hook_message(interaction, request)
        interaction.deferred_pending = False
        self.fake.message_deleted(message)
        return no_content()


def _bad_type(kind: int, allowed: tuple[int, ...]) -> DiscordError:
    """Build the 50035 error for a callback type this interaction cannot use."""
    errors = FormErrors()
    errors.add(
        ["type"], "BASE_TYPE_CHOICES", f"Value must be one of {sorted(allowed)}, got {kind}."
    )
    return DiscordError(400, 50035, "Invalid Form Body", errors=errors.tree)


def _check_allowed(interaction: FakeInteraction, kind: int) -> None:
    """Reject callback types that do not apply to this interaction type."""
    allowed = ALLOWED_CALLBACKS.get(interaction.type, ())
    if kind not in allowed:
        raise _bad_type(kind, allowed)
    if interaction.type == INTERACTION_MODAL_SUBMIT and kind in (CB_DEFERRED_UPDATE, CB_UPDATE):
        if interaction.source_message is None:
            raise _bad_type(kind, (CB_MESSAGE, CB_DEFERRED_MESSAGE))


def _message_type(interaction: FakeInteraction) -> int:
    """Return the message type Discord gives interaction responses."""
    if interaction.type != INTERACTION_APPLICATION_COMMAND:
        return 0
    return 20 if interaction.command_type in (None, 1) else 23


def _metadata(interaction: FakeInteraction) -> dict[str, Any]:
    """Build ``interaction_metadata`` for messages created by an interaction."""
    data: dict[str, Any] = {
        "id": str(interaction.id),
        "type": interaction.type,
        "user": interaction.user.payload(),
        "authorizing_integration_owners": interaction.payload.get(
            "authorizing_integration_owners", {}
        ),
    }
    if interaction.name is not None:
        data.update(name=interaction.name, command_type=interaction.command_type or 1)
    if interaction.source_message is not None:
        data["interacted_message_id"] = str(interaction.source_message.id)
    if interaction.original is not None:
        data["original_response_message_id"] = str(interaction.original.id)
    return data


def _callback_resource(
    interaction: FakeInteraction, kind: int, message: FakeMessage | None
) -> dict[str, Any]:
    """Build the ``?with_response=true`` answer."""
    resource: dict[str, Any] = {"type": kind}
    if message is not None and kind != CB_DEFERRED_UPDATE:
        resource["message"] = message.payload()
    shown = message if kind != CB_DEFERRED_UPDATE else None
    return {
        "interaction": {
            "id": str(interaction.id),
            "type": interaction.type,
            "activity_instance_id": None,
            "response_message_id": None if shown is None else str(shown.id),
            "response_message_loading": bool(shown and shown.loading),
            "response_message_ephemeral": bool(shown and shown.ephemeral),
        },
        "resource": resource,
    }
