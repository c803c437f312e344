"""The custom-LLM response engine: Voxline dials the developer's LLM server (spec E).

One `CustomLlmClient` per call. The platform is the WebSocket client: it dials
`{llm_websocket_url}/{call_id}`, sends transcripts and response requests, and turns what the
server streams back into `LlmEvent`s for the conversation engine. Failures never raise into the
engine: they arrive as one final `LlmEnded` whose `reason` becomes the call's
`disconnection_reason`.

A supervisor task owns the socket: it reads frames, runs the app-level ping_pong watchdog when
the server asked for `auto_reconnect`, and replaces a lost socket with a fresh one to the same
URL (up to `max_reconnects` times). Every send has a deadline; every receive is bounded by the
ping_pong window (or, without `auto_reconnect`, by WebSocket protocol pings).
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxline.llm.interfaces import (
    AgentConfigUpdate,
    AgentInterrupt,
    LlmEnded,
    LlmEvent,
    MetadataEvent,
    ResponseChunk,
    ToolCallInvocation,
    ToolCallResult,
    Utterance,
)
from voxline.schemas.llm_websocket import (
    AgentInterruptMessage,
    CallDetailsRequest,
    ConfigMessage,
    CorruptPayload,
    LlmConfig,
    MalformedMessage,
    MetadataMessage,
    PingPongMessage,
    PingPongRequest,
    ReminderRequiredRequest,
    ResponseMessage,
    ResponseRequiredRequest,
    ToolCallInvocationMessage,
    ToolCallResultMessage,
    UpdateAgentMessage,
    UpdateOnlyRequest,
    parse_server_message,
)

__all__ = ["CustomLlmClient", "LoggedMessage", "llm_socket_url"]

log = logging.getLogger(__name__)

Direction = Literal["to_llm", "from_llm"]


@dataclass(frozen=True)
class LoggedMessage:
    """One message on the LLM socket, for the call's public log.

    `at` is `time.monotonic()` (the engine's clock for latency marks); `connection` counts sockets
    (1 = the first, 2 = the first reconnect…); `note` says what happened to it when that is not
    obvious ("stale", "malformed: …", "corrupt: …").
    """

    at: float
    direction: Direction
    connection: int
    payload: Any
    note: str = ""


def llm_socket_url(llm_websocket_url: str, call_id: str) -> str:
    """`{llm_websocket_url}/{call_id}`, with one trailing slash of the path dropped.

    A query string (e.g. a secret token, the usual way to protect this socket) stays a query
    string: it goes after the call id path segment, so `wss://h/llm?k=1` → `wss://h/llm/{id}?k=1`.
    A naive string append would have put the id inside the token's value instead.
    """
    parts = urlsplit(llm_websocket_url)
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/{quote(call_id, safe='')}", parts.query, ""))


@dataclass
class _Connection:
    """One socket's state; a reconnect starts a new one."""

    ws: ClientConnection
    index: int
    opened_at: float
    last_pong: float
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pinger: asyncio.Task[None] | None = None
    abandon_reason: str = ""
    """Set when we drop the socket ourselves (missed pongs, stalled send): reconnect, whatever the close code."""
    pings_in_flight: dict[int, float] = field(default_factory=dict)


class _Reconnect(Exception):
    """Internal: this socket is gone, try a fresh one."""


class CustomLlmClient:
    """`ResponseEngine` over the LLM WebSocket protocol.

    Public state for the engine and the post-call log: `config` (what the server asked for on the
    current socket), `message_log` (every message both ways), `rtt_samples_ms` (ping_pong round
    trips), `url` (what is dialled).

    Timings default to Retell's documented behaviour and are parameters so tests run fast.
    """

    def __init__(
        self,
        llm_websocket_url: str,
        call_id: str,
        *,
        open_timeout: float = 7.0,
        open_attempts: int = 3,
        open_retry_delay: float = 3.0,
        ping_interval: float = 2.0,
        pong_timeout: float = 5.0,
        max_reconnects: int = 2,
        reconnect_delay: float = 0.2,
        reconnect_budget_reset: float = 60.0,
        send_timeout: float = 5.0,
        close_timeout: float = 1.0,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        max_message_size: int = 1 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = llm_socket_url(llm_websocket_url, call_id)
        self.call_id = call_id
        self.open_timeout = open_timeout
        self.open_attempts = open_attempts
        self.open_retry_delay = open_retry_delay
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_reconnects = max_reconnects
        self.reconnect_delay = reconnect_delay
        self.reconnect_budget_reset = reconnect_budget_reset
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        self.max_message_size = max_message_size
        self._clock = clock

        self.config = LlmConfig()
        self.message_log: list[LoggedMessage] = []
        self.rtt_samples_ms: list[float] = []

        self._call: dict[str, Any] = {}
        self._events: asyncio.Queue[LlmEvent | None] = asyncio.Queue()
        self._conn: _Connection | None = None
        self._connections = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._ended = False
        self._closed = False
        self._current_id = 0
        """The newest requested response id; 0 (the begin message) until the first request."""
        self._current_complete = False
        self._pending_request: dict[str, Any] | None = None
        """The newest response/reminder request while its answer is open: resent after a reconnect,
        because a fresh server socket knows nothing of it and the agent would stay silent."""

    # --- ResponseEngine --------------------------------------------------------------------------

    async def start(self, call: dict[str, Any]) -> None:
        """Dial the server (`open_attempts` tries); on failure the only event is `LlmEnded(open)`."""
        if self._supervisor is not None or self._ended:
            raise RuntimeError("start() was already called")
        self._call = call
        last_error = ""
        for attempt in range(self.open_attempts):
            if attempt:
                await asyncio.sleep(self.open_retry_delay)
            if self._closed:
                return
            try:
                ws = await self._open()
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                log.info("LLM websocket %s: attempt %d failed: %s", self.url, attempt + 1, last_error)
                continue
            if self._closed:  # close() ran while we were dialling
                await ws.close(1000, "call ended")
                return
            conn = self._attach(ws)  # attached before returning, so sends right after start() go out
            self._supervisor = asyncio.create_task(self._supervise(conn), name=f"llm-websocket-{self.call_id}")
            return
        self._end("error_llm_websocket_open", f"{self.open_attempts} attempts failed; last: {last_error}")

    async def events(self) -> AsyncIterator[LlmEvent]:
        """Events in arrival order; ends after `LlmEnded`, or when `close()` is called."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event
            if isinstance(event, LlmEnded):
                return

    async def update(
        self,
        transcript: list[Utterance],
        turntaking: Literal["agent_turn", "user_turn"] | None,
        *,
        transcript_with_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """Send `update_only`. Dropped (not queued) while reconnecting: the next update or request
        carries the whole transcript anyway."""
        message = UpdateOnlyRequest(
            transcript=transcript,
            transcript_with_tool_calls=self._with_tools(transcript, transcript_with_tool_calls),
            turntaking=turntaking,
        )
        await self._send_current(message.to_wire())

    async def request_response(
        self,
        response_id: int,
        transcript: list[Utterance],
        *,
        reminder: bool = False,
        transcript_with_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """Send `response_required` / `reminder_required`; from now on only `response_id` is spoken."""
        if response_id <= self._current_id and self._current_id != 0:
            raise ValueError(f"response ids must increase: {response_id} after {self._current_id}")
        model = ReminderRequiredRequest if reminder else ResponseRequiredRequest
        message = model(
            response_id=response_id,
            transcript=transcript,
            transcript_with_tool_calls=self._with_tools(transcript, transcript_with_tool_calls),
        ).to_wire()
        self._current_id = response_id
        self._current_complete = False
        self._pending_request = message
        await self._send_current(message)

    async def close(self) -> None:
        """The platform is done with the call: close with 1000 and end `events()` (no `LlmEnded`)."""
        if self._closed:
            return
        self._closed = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._close_socket(conn, 1000, "call ended")
        if not self._ended:
            self._ended = True
            self._events.put_nowait(None)

    # --- connection lifecycle --------------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        """One connection attempt; `open_timeout` bounds TCP, TLS and the handshake together."""
        return await connect(
            self.url,
            open_timeout=self.open_timeout,
            close_timeout=self.close_timeout,
            ping_interval=self.ws_ping_interval,
            ping_timeout=self.ws_ping_timeout,
            max_size=self.max_message_size,
            compression=None,
        )

    def _attach(self, ws: ClientConnection) -> _Connection:
        self._connections += 1
        now = self._clock()
        self._conn = _Connection(ws=ws, index=self._connections, opened_at=now, last_pong=now)
        self.config = LlmConfig()  # each socket's server sends its own config
        return self._conn

    async def _supervise(self, conn: _Connection) -> None:
        """Run sockets until the call ends: serve one, reconnect on loss, stop on a final reason."""
        try:
            await self._run_sockets(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug between sockets must still end the call, not hang it
            log.exception("LLM websocket %s: supervisor failed", self.url)
            self._end("error_llm_websocket_runtime", f"{type(exc).__name__}: {exc}")

    async def _run_sockets(self, conn: _Connection) -> None:
        reconnects_left = self.max_reconnects
        first = conn
        while True:
            try:
                if conn is not first and self._pending_request is not None and not self._current_complete:
                    await self._send(conn, self._pending_request)
                await self._serve(conn)
                return  # _serve returns only after ending the call
            except _Reconnect as lost:
                detail = str(lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("LLM websocket %s: runtime error", self.url)
                await self._close_socket(conn, 1011, "internal error")
                self._end("error_llm_websocket_runtime", f"{type(exc).__name__}: {exc}")
                return
            finally:
                await self._stop_pinger(conn)
            log.info("LLM websocket %s: connection %d lost (%s)", self.url, conn.index, detail)
            if self._clock() - conn.opened_at >= self.reconnect_budget_reset:
                reconnects_left = self.max_reconnects  # a long healthy socket earns a fresh budget
            self._conn = None
            new_ws: ClientConnection | None = None
            while new_ws is None:
                if reconnects_left <= 0:
                    self._end("error_llm_websocket_lost_connection", detail)
                    return
                reconnects_left -= 1
                await asyncio.sleep(self.reconnect_delay)
                try:
                    new_ws = await self._open()
                except Exception as exc:
                    detail = f"reconnect failed: {type(exc).__name__}: {exc}"
                    self._connections += 1
            conn = self._attach(new_ws)

    async def _serve(self, conn: _Connection) -> None:
        """Read one socket until it ends the call (returns) or is lost (raises `_Reconnect`)."""
        while True:
            try:
                frame = await conn.ws.recv()
            except ConnectionClosed as exc:
                if conn.abandon_reason:
                    raise _Reconnect(conn.abandon_reason) from None
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                if code == 1000:
                    self._end("agent_hangup", "LLM server closed the socket with 1000")
                    return
                raise _Reconnect(f"closed with code {code}") from None
            try:
                message, raw = parse_server_message(frame)
            except CorruptPayload as exc:
                shown = f"<{len(frame)} bytes>" if isinstance(frame, bytes) else frame[:200]
                self._log("from_llm", conn, shown, f"corrupt: {exc}")
                await self._close_socket(conn, 1007, "corrupt payload")
                self._end("error_llm_websocket_corrupt_payload", str(exc))
                return
            except MalformedMessage as exc:
                self._log("from_llm", conn, exc.payload, f"malformed: {exc}")
                log.warning("LLM websocket %s: ignored malformed message: %s", self.url, exc)
                continue
            await self._handle(conn, message, raw)

    async def _handle(self, conn: _Connection, message: Any, raw: dict[str, Any]) -> None:
        note = ""
        event: LlmEvent | None = None
        if isinstance(message, ResponseMessage):
            if message.response_id != self._current_id or self._current_complete:
                note = "stale"
            else:
                self._current_complete = message.content_complete
                if message.content_complete:
                    self._pending_request = None
                event = ResponseChunk(
                    response_id=message.response_id,
                    content=message.content,
                    content_complete=message.content_complete,
                    end_call=bool(message.end_call),
                    no_interruption_allowed=bool(message.no_interruption_allowed),
                    transfer_number=message.transfer_number,
                    digit_to_press=message.digit_to_press,
                )
        elif isinstance(message, AgentInterruptMessage):
            event = AgentInterrupt(
                interrupt_id=message.interrupt_id,
                content=message.content,
                content_complete=message.content_complete,
                no_interruption_allowed=bool(message.no_interruption_allowed),
                end_call=bool(message.end_call),
            )
        elif isinstance(message, PingPongMessage):
            now = self._clock()
            conn.last_pong = now
            sent_at = conn.pings_in_flight.pop(message.timestamp, None)
            if sent_at is not None:
                self.rtt_samples_ms.append((now - sent_at) * 1000)
                # Older unanswered pings will not be answered now; forget them.
                for stamp in [s for s in conn.pings_in_flight if s < message.timestamp]:
                    del conn.pings_in_flight[stamp]
        elif isinstance(message, ConfigMessage):
            self._log("from_llm", conn, raw)
            self.config = message.config
            if message.config.call_details:
                await self._send(conn, CallDetailsRequest(call=self._call).to_wire())
            if message.config.auto_reconnect and conn.pinger is None:
                conn.last_pong = self._clock()
                conn.pinger = asyncio.create_task(self._ping(conn), name=f"llm-ping-{self.call_id}")
            return
        elif isinstance(message, ToolCallInvocationMessage):
            event = ToolCallInvocation(message.tool_call_id, message.name, message.arguments)
        elif isinstance(message, ToolCallResultMessage):
            event = ToolCallResult(message.tool_call_id, message.content, message.successful)
        elif isinstance(message, UpdateAgentMessage):
            fields = message.agent_config.model_dump(exclude_none=True)
            event = AgentConfigUpdate(fields) if fields else None
        elif isinstance(message, MetadataMessage):
            event = MetadataEvent(message.metadata)
        self._log("from_llm", conn, raw, note)
        if event is not None:
            self._events.put_nowait(event)

    async def _ping(self, conn: _Connection) -> None:
        """Every `ping_interval` send ping_pong; no pong for `pong_timeout` ⇒ drop the socket."""
        try:
            await self._ping_loop(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a watchdog that died silently would leave a dead socket unnoticed
            log.exception("LLM websocket %s: ping task failed", self.url)
            conn.abandon_reason = f"ping task failed: {type(exc).__name__}: {exc}"
            conn.ws.transport.abort()

    async def _ping_loop(self, conn: _Connection) -> None:
        next_ping = self._clock()
        while True:
            now = self._clock()
            if now - conn.last_pong >= self.pong_timeout:
                conn.abandon_reason = f"no ping_pong for {self.pong_timeout:g} s"
                await self._close_socket(conn, 1001, "ping_pong timeout")
                return
            if now >= next_ping:
                stamp = int(time.time() * 1000)
                conn.pings_in_flight[stamp] = now
                await self._send(conn, PingPongRequest(timestamp=stamp).to_wire())
                next_ping = now + self.ping_interval
            await asyncio.sleep(max(0.0, min(next_ping, conn.last_pong + self.pong_timeout) - self._clock()))

    async def _stop_pinger(self, conn: _Connection) -> None:
        pinger, conn.pinger = conn.pinger, None
        if pinger is not None and pinger is not asyncio.current_task():
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger

    # --- sending ---------------------------------------------------------------------------------

    def _with_tools(
        self, transcript: list[Utterance], with_tools: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        """Only when the server asked; without tool calls the plain transcript is the right value."""
        if not self.config.transcript_with_tool_calls:
            return None
        return with_tools if with_tools is not None else transcript

    async def _send_current(self, message: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None or self._ended:
            self._log("to_llm", None, message, "not sent: no connection")
            return
        await self._send(conn, message)

    async def _send(self, conn: _Connection, message: dict[str, Any]) -> None:
        """Send with a deadline. A socket that cannot take a message in time is dropped (the
        supervisor reconnects); a send on a socket that is already closing is simply lost."""
        text = json.dumps(message, separators=(",", ":"))
        try:
            async with asyncio.timeout(self.send_timeout):
                async with conn.send_lock:
                    await conn.ws.send(text)
        except TimeoutError:
            self._log("to_llm", conn, message, "not sent: send timed out")
            conn.abandon_reason = f"send stalled for {self.send_timeout:g} s"
            conn.ws.transport.abort()
            return
        except ConnectionClosed:
            self._log("to_llm", conn, message, "not sent: socket closed")
            return
        self._log("to_llm", conn, message)

    async def _close_socket(self, conn: _Connection, code: int, reason: str) -> None:
        """Close politely within `close_timeout`, else cut the TCP connection."""
        try:
            async with asyncio.timeout(self.close_timeout + 0.5):
                await conn.ws.close(code, reason)
        except Exception:
            conn.ws.transport.abort()

    # --- bookkeeping -----------------------------------------------------------------------------

    def _log(self, direction: Direction, conn: _Connection | None, payload: Any, note: str = "") -> None:
        index = conn.index if conn is not None else self._connections
        self.message_log.append(LoggedMessage(self._clock(), direction, index, payload, note))

    def _end(self, reason: Any, detail: str) -> None:
        """Emit the one `LlmEnded`; later failures (e.g. while closing) are not news."""
        if self._ended or self._closed:
            return
        self._ended = True
        log.info("LLM websocket %s ended: %s (%s)", self.url, reason, detail)
        self._events.put_nowait(LlmEnded(reason, detail))
