"""The fake gateway: a websocket speaking Discord's v10 JSON protocol, uncompressed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .discord_state import PRIVILEGED_INTENTS, FakeGuild, Intent

if TYPE_CHECKING:
    from .discord import FakeDiscord

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_VOICE_STATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

HEARTBEAT_INTERVAL_MS = 41250
BUFFER_LIMIT = 2000
# Discord closes an IDENTIFY whose session would hold more guilds than this (4011).
MAX_GUILDS_PER_SESSION = 2500

Shaper = Callable[["GatewaySession", dict[str, Any]], dict[str, Any] | None]


@dataclass
class Outgoing:
    """A frame waiting to be written, with a future resolved at send time (monotonic)."""

    frame: dict[str, Any]
    sent: asyncio.Future[float]
    on_sent: Callable[[float], None] | None = None


@dataclass
class GatewayConnection:
    """One websocket connection (before or after IDENTIFY / RESUME)."""

    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    queue: asyncio.Queue[Outgoing | None] = field(default_factory=asyncio.Queue)
    session: GatewaySession | None = None

    def send(
        self, frame: dict[str, Any], on_sent: Callable[[float], None] | None = None
    ) -> Outgoing:
        """Queue a frame for the writer task."""
        item = Outgoing(frame, asyncio.get_running_loop().create_future(), on_sent)
        self.queue.put_nowait(item)
        return item


@dataclass
class GatewaySession:
    """A gateway session: what the bot identified with, and the dispatch sequence."""

    id: str
    identify: dict[str, Any]
    intents: int
    shard: tuple[int, int] | None
    seq: int = 0
    ready: bool = False
    connection: GatewayConnection | None = None
    buffer: list[Outgoing] = field(default_factory=list)

    def has(self, intent: int) -> bool:
        """Return True if the session identified with this intent."""
        return bool(self.intents & intent)

    def owns_guild(self, guild_id: int | None) -> bool:
        """Return True if the guild's events go to this session's shard (DMs: shard 0's)."""
        if self.shard is None:
            return True
        return shard_of(guild_id, self.shard[1]) == self.shard[0]


def shard_of(guild_id: int | None, count: int) -> int:
    """The shard a guild's events go to; events outside guilds (DMs) go to shard 0."""
    return 0 if guild_id is None else (guild_id >> 22) % count


def parse_shard(raw: Any) -> tuple[int, int] | None:
    """IDENTIFY's `shard` as (id, count); None when absent; ValueError when Discord refuses it."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 2 or not all(type(v) is int for v in raw):
        raise ValueError("shard must be [shard_id, num_shards]")
    shard_id, count = raw
    if count < 1 or not 0 <= shard_id < count:
        raise ValueError(f"shard {shard_id} is not in 0..{count - 1}")
    return shard_id, count


class GatewayServer:
    """Accepts websocket connections and routes events to the bot's sessions."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Attach to the fake whose state is served."""
        self.fake = fake
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes = 0
        self.heartbeats = 0
        self.presence_updates: list[dict[str, Any]] = []

    # websocket lifecycle

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one gateway connection until it closes."""
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(ws, request.path, dict(request.query))
        self.connections.append(conn)
        if request.query.get("v", "10") != "10" or request.query.get("encoding", "json") != "json":
            await ws.close(code=4012, message=b"Invalid API version or encoding.")
            return ws
        writer = asyncio.create_task(self._writer(conn), name="fake-discord-gateway-writer")
        conn.send(
            {
                "op": OP_HELLO,
                "d": {"heartbeat_interval": self.fake.heartbeat_interval_ms},
                "s": None,
                "t": None,
            }
        )
        try:
            await self._reader(conn)
        finally:
            await self._teardown(conn, writer)
        return ws

    async def _reader(self, conn: GatewayConnection) -> None:
        """Process incoming frames."""
        async for msg in conn.ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(msg.data)
            except ValueError:
                await conn.ws.close(code=4002, message=b"Error while decoding payload.")
                return
            await self._on_frame(conn, frame)

    async def _writer(self, conn: GatewayConnection) -> None:
        """Write queued frames in order, resolving their futures."""
        while (item := await conn.queue.get()) is not None:
            if item.sent.done():
                continue
            try:
                await conn.ws.send_str(json.dumps(item.frame))
            except (ConnectionError, RuntimeError):
                continue  # left pending: a RESUME replays it
            at = time.monotonic()
            item.sent.set_result(at)
            if item.on_sent is not None:
                item.on_sent(at)

    async def _teardown(self, conn: GatewayConnection, writer: asyncio.Task[None]) -> None:
        """Stop the writer and detach (or end) the session."""
        conn.queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        session = conn.session
        if session is not None and session.connection is conn:
            session.connection = None
            if conn.ws.close_code in (1000, 1001):
                self.sessions.pop(session.id, None)
        self.fake.signal.fire()

    # opcodes

    async def _on_frame(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        """Dispatch on the opcode."""
        op, data = frame.get("op"), frame.get("d")
        if op == OP_HEARTBEAT:
            self.heartbeats += 1
            conn.send({"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY:
            await self._identify(conn, data or {})
        elif op == OP_RESUME:
            await self._resume(conn, data or {})
        elif conn.session is None:
            await conn.ws.close(code=4003, message=b"Not authenticated.")
        elif op == OP_PRESENCE:
            self.presence_updates.append(data or {})
        elif op == OP_REQUEST_MEMBERS:
            self._members_chunk(conn, data or {})
        elif op != OP_VOICE_STATE:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    async def _identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        """Handle IDENTIFY: check token and intents, then send READY and GUILD_CREATEs."""
        self.identifies.append(data)
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self.fake.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.fake.allowed_privileged_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        try:
            shard = parse_shard(data.get("shard"))
        except ValueError:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        session = GatewaySession(secrets.token_hex(16), data, intents, shard)
        if len(self._guilds_of(session)) > self.fake.max_guilds_per_session:
            await conn.ws.close(code=4011, message=b"Sharding required.")
            return
        self.sessions[session.id] = session
        self._attach(conn, session)
        self._send_ready(session)

    def _guilds_of(self, session: GatewaySession) -> list[FakeGuild]:
        """The guilds whose events go to a session."""
        return [g for g in self.fake.guilds.values() if session.owns_guild(g.id)]

    def _attach(self, conn: GatewayConnection, session: GatewaySession) -> None:
        """Bind a connection to a session."""
        conn.session = session
        session.connection = conn

    def _send_ready(self, session: GatewaySession) -> None:
        """Send READY then one GUILD_CREATE per guild; mark ready once all are written."""
        guilds = self._guilds_of(session)
        ready = self._ready_payload(session, guilds)
        last = self._dispatch_to(session, "READY", ready)
        all_members = session.has(Intent.GUILD_MEMBERS)
        for guild in guilds:
            last = self._dispatch_to(
                session,
                "GUILD_CREATE",
                guild.gateway_payload(self.fake.bot_user.id, all_members=all_members),
            )
        last.on_sent = lambda _at: self._mark_ready(session)

    def _ready_payload(self, session: GatewaySession, guilds: list[FakeGuild]) -> dict[str, Any]:
        """Return the READY event data."""
        fake = self.fake
        user = fake.bot_user.payload()
        user.update(verified=True, mfa_enabled=False, email=None)
        data: dict[str, Any] = {
            "v": 10,
            "user": user,
            "user_settings": {},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": fake.resume_gateway_url,
            "application": {"id": str(fake.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "auth": {},
            "_trace": ['["fake-discord-gateway"]'],
        }
        if session.shard is not None:
            data["shard"] = list(session.shard)
        return data

    def _mark_ready(self, session: GatewaySession) -> None:
        """Record that the session received everything up to its last GUILD_CREATE."""
        session.ready = True
        self.fake.signal.fire()

    async def _resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        """Handle RESUME: replay missed dispatches then send RESUMED."""
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self.fake.token:
            conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        self.resumes += 1
        self._attach(conn, session)
        seq = int(data.get("seq") or 0)
        for item in session.buffer:
            if item.frame["s"] > seq and not item.sent.done():
                conn.queue.put_nowait(item)
            elif item.frame["s"] > seq:
                conn.send(item.frame)
        self._dispatch_to(session, "RESUMED", {"_trace": ["fake-discord"]})
        self.fake.signal.fire()

    def _members_chunk(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        """Answer REQUEST_GUILD_MEMBERS with a single GUILD_MEMBERS_CHUNK."""
        guild = self.fake.guilds.get(int(data.get("guild_id", 0)))
        if guild is None or conn.session is None:
            return
        members = list(guild.members.values())
        wanted = [int(u) for u in data.get("user_ids") or []]
        if wanted:
            members = [m for m in members if m.id in wanted]
        query = str(data.get("query") or "").lower()
        members = [m for m in members if m.user.username.lower().startswith(query)]
        chunk = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in wanted if u not in guild.members],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        self._dispatch_to(conn.session, "GUILD_MEMBERS_CHUNK", chunk)

    # dispatching

    def _dispatch_to(self, session: GatewaySession, event: str, data: dict[str, Any]) -> Outgoing:
        """Sequence a dispatch for one session; send now or keep it for a RESUME."""
        session.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        item = Outgoing(frame, asyncio.get_running_loop().create_future())
        session.buffer.append(item)
        del session.buffer[:-BUFFER_LIMIT]
        if session.connection is not None:
            session.connection.queue.put_nowait(item)
        return item

    def dispatch(
        self,
        event: str,
        data: dict[str, Any],
        *,
        guild_id: int | None = None,
        intent: int | None = None,
        shape: Shaper | None = None,
    ) -> list[asyncio.Future[float]]:
        """Send an event to every session entitled to it; return futures resolved when written."""
        futures = []
        for session in list(self.sessions.values()):
            if not session.owns_guild(guild_id) or (intent is not None and not session.has(intent)):
                continue
            payload = shape(session, data) if shape is not None else data
            if payload is not None:
                futures.append(self._dispatch_to(session, event, payload).sent)
        return futures

    @property
    def ready(self) -> bool:
        """Return True if some session is connected and has received all its GUILD_CREATEs."""
        return any(s.ready and s.connection is not None for s in self.sessions.values())

    def events_of(self, shard: tuple[int, int] | None) -> list[tuple[str, dict[str, Any]]]:
        """(event, data) of the dispatches sent to the live sessions of one shard, in order."""
        return [
            (item.frame["t"], item.frame["d"])
            for session in self.sessions.values()
            if session.shard == shard
            for item in session.buffer
        ]

    def ready_shards(self) -> set[tuple[int, int] | None]:
        """The shards ((id, count), None for unsharded) of connected sessions that are ready."""
        return {s.shard for s in self.sessions.values() if s.ready and s.connection is not None}

    def recommended_shards(self) -> int:
        """GET /gateway/bot's `shards`: one per `guilds_per_shard` guilds, at least one."""
        return max(1, -(-len(self.fake.guilds) // self.fake.guilds_per_shard))

    # fault injection

    def _live(self) -> list[GatewayConnection]:
        """Return connections bound to a session."""
        return [s.connection for s in self.sessions.values() if s.connection is not None]

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT to every live session."""
        for conn in self._live():
            conn.send({"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    async def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; non-resumable sessions are forgotten."""
        for conn in self._live():
            conn.send({"op": OP_INVALID_SESSION, "d": resumable, "s": None, "t": None})
            if not resumable and conn.session is not None:
                self.sessions.pop(conn.session.id, None)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every websocket from the server side with ``code``."""
        for conn in list(self.connections):
            if not conn.ws.closed:
                await conn.ws.close(code=code, message=b"fake discord closed the connection")

    async def close(self) -> None:
        """Close everything (server shutdown)."""
        await self.drop_connections(code=1001)
        self.sessions.clear()
