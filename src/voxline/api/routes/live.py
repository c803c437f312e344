"""The live-call WebSockets: thin adapters between a client's socket and `LiveCalls`.

- `/audio-websocket/{call_id}`: Retell's audio WebSocket as web client 1.x speaks it (binary
  PCM16LE mono at the call's sample rate, "ping"/"pong", "clear", JSON `update` events when
  `?enable_update=true`, `metadata` events).
- `/web-call-websocket`: Voxline's web-call socket, joined with the call's `access_token` in the
  first message (never with the bare call id); same audio framing plus the web client 2.x events.
  The protocol is written down in docs/web-call-websocket.md.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voxline.api.auth import get_services
from voxline.calls.service import JoinRefused
from voxline.speech.audio import float32_to_pcm16le, mulaw_decode

router = APIRouter()
log = logging.getLogger(__name__)

CLOSE_REFUSED = 4001
"""The call cannot be joined (unknown, already joined or ended, bad or expired token)."""
CLOSE_BUSY = 4029
"""The concurrency limit was reached."""
CLOSE_JOIN_TIMEOUT = 4008
JOIN_MESSAGE_TIMEOUT_S = 10.0
DEFAULT_SAMPLE_RATE = 24_000


class SocketSink:
    """An OutputSink over one WebSocket; sends are serialised (the engine sends from several tasks)."""

    def __init__(self, websocket: WebSocket, *, legacy: bool, enable_update: bool = True) -> None:
        self._ws = websocket
        self._legacy = legacy
        self._enable_update = enable_update
        self._lock = asyncio.Lock()
        self.closed = False

    async def _send(self, send: Callable[[], Any]) -> None:
        if self.closed:
            return
        async with self._lock:
            try:
                await send()
            except (WebSocketDisconnect, RuntimeError):
                self.closed = True

    async def send_text(self, text: str) -> None:
        await self._send(lambda: self._ws.send_text(text))

    async def send_audio(self, pcm16le: bytes, response_id: int) -> None:
        await self._send(lambda: self._ws.send_bytes(pcm16le))

    async def send_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event_type")
        if self._legacy and (
            kind in ("agent_start_talking", "agent_stop_talking") or (not self._enable_update and kind == "update")
        ):
            return  # web client 1.x derives talking state itself; updates only on request
        await self.send_text(json.dumps(event, separators=(",", ":")))

    async def clear(self) -> None:
        await self.send_text("clear" if self._legacy else '{"event_type":"clear"}')


async def _frames(websocket: WebSocket, sink: SocketSink, *, legacy: bool, mulaw: bool) -> AsyncIterator[bytes]:
    """Client audio until the client leaves; answers pings on the way."""
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is not None:
            yield float32_to_pcm16le(mulaw_decode(data)) if mulaw else data
            continue
        text = message.get("text") or ""
        if legacy and text == "ping":
            await sink.send_text("pong")
        elif not legacy and '"ping"' in text:
            await sink.send_text('{"event_type":"pong"}')


async def _refuse(websocket: WebSocket, exc: JoinRefused) -> None:
    code = CLOSE_BUSY if "concurrency limit" in exc.message else CLOSE_REFUSED
    await websocket.close(code=code, reason=exc.message[:120])


@router.websocket("/audio-websocket/{call_id}")
async def audio_websocket(websocket: WebSocket, call_id: str) -> None:
    services = get_services(websocket)  # type: ignore[arg-type]
    await websocket.accept()
    try:
        record = await services.calls.join_by_call_id(call_id, services.settings.max_concurrent_calls)
    except JoinRefused as exc:
        await _refuse(websocket, exc)
        return
    audio = record.config.get("audio", {})
    rate = int(websocket.query_params.get("sample_rate") or audio.get("sample_rate") or DEFAULT_SAMPLE_RATE)
    sink = SocketSink(websocket, legacy=True, enable_update=websocket.query_params.get("enable_update") == "true")
    frames = _frames(websocket, sink, legacy=True, mulaw=audio.get("audio_encoding") == "mulaw")
    reason = await services.live.run(record, frames, sink, input_sample_rate=rate, output_sample_rate=rate)
    await _close(websocket, sink, reason)


@router.websocket("/web-call-websocket")
async def web_call_websocket(websocket: WebSocket) -> None:
    services = get_services(websocket)  # type: ignore[arg-type]
    await websocket.accept()
    try:
        join = json.loads(await asyncio.wait_for(websocket.receive_text(), JOIN_MESSAGE_TIMEOUT_S))
        token = join["access_token"] if isinstance(join, dict) and join.get("event_type") == "join" else None
        rate = int(join.get("sample_rate") or DEFAULT_SAMPLE_RATE) if isinstance(join, dict) else 0
    except (TimeoutError, WebSocketDisconnect, ValueError, KeyError, TypeError):
        await websocket.close(code=CLOSE_JOIN_TIMEOUT, reason="send {event_type: join, access_token} first")
        return
    if not isinstance(token, str) or not 8_000 <= rate <= 48_000:
        await websocket.close(code=CLOSE_REFUSED, reason="join needs an access_token and a sample_rate of 8000-48000")
        return
    try:
        record = await services.calls.join_with_token(token, services.settings.max_concurrent_calls)
    except JoinRefused as exc:
        await _refuse(websocket, exc)
        return
    sink = SocketSink(websocket, legacy=False)
    await sink.send_event({"event_type": "call_started", "call_id": record.call_id, "sample_rate": rate})
    frames = _frames(websocket, sink, legacy=False, mulaw=False)
    reason = await services.live.run(record, frames, sink, input_sample_rate=rate, output_sample_rate=rate)
    await sink.send_event({"event_type": "call_ended", "disconnection_reason": reason})
    await _close(websocket, sink, reason)


async def _close(websocket: WebSocket, sink: SocketSink, reason: str) -> None:
    if not sink.closed:
        try:
            await websocket.close(code=1000, reason=reason)
        except (WebSocketDisconnect, RuntimeError):
            pass
