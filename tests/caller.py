"""A scripted caller for end-to-end tests: joins a live call over the web-call WebSocket, streams
real synthesised speech (Debian's flite, not the agent's Piper voice) in real time, silence in
between, and records every audio frame and event the agent sends, with arrival times."""

import asyncio
import contextlib
import json
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import websockets

FRAME_MS = 20


class Refused(Exception):
    """The server closed the socket instead of starting the call."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"refused with close code {code}: {reason}")
        self.code, self.reason = code, reason


def flite_speech(text: str, sample_rate: int) -> bytes:
    """`text` spoken by flite's slt voice, as PCM16LE mono at `sample_rate`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        with wave.open(str(path)) as wav:
            rate = wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    audio = soxr.resample(samples.astype(np.float32) / 32768, rate, sample_rate)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


@dataclass
class Received:
    at: float
    audio: bytes | None = None
    event: dict[str, Any] | None = None


@dataclass
class WebCaller:
    """Use as `async with WebCaller(url, token) as caller:`; always streams audio (silence when idle)."""

    url: str
    token: str
    sample_rate: int = 16_000
    received: list[Received] = field(default_factory=list)
    speech_starts: list[float] = field(default_factory=list)
    """Monotonic time each `say()`'s first frame was sent (its leading silence included)."""
    speech_ends: list[float] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[float]]] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> "WebCaller":
        self._ws = await websockets.connect(self.url, max_size=None)
        if not self.token:  # Retell's 1.x audio WebSocket: the URL names the call, audio flows at once
            self.call_id = self.url.rsplit("/", 1)[1].split("?")[0]
            self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._send())]
            return self
        await self._ws.send(
            json.dumps({"event_type": "join", "access_token": self.token, "sample_rate": self.sample_rate})
        )
        try:
            async with asyncio.timeout(10):
                first = json.loads(await self._ws.recv())
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            raise Refused(code, exc.rcvd.reason if exc.rcvd else "") from exc
        assert first["event_type"] == "call_started", first
        self.call_id = first["call_id"]
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._send())]
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task
        await self._ws.close()

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    self.received.append(Received(now, audio=message))
                elif message in ("pong", "clear"):  # the 1.x socket's plain-text messages
                    self.received.append(Received(now, event={"event_type": message}))
                else:
                    try:
                        event = json.loads(message)
                    except ValueError:
                        event = {"event_type": "not_json", "text": message}
                    self.received.append(Received(now, event=event))
                async with self._arrived:
                    self._arrived.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self._ws.close_code is not None:
                self.close_code, self.close_reason = self._ws.close_code, self._ws.close_reason or ""
            self._ended.set()
            async with self._arrived:
                self._arrived.notify_all()

    async def _send(self) -> None:
        """20 ms frames on an absolute real-time schedule: queued speech, else silence."""
        frame_bytes = self.sample_rate * FRAME_MS // 1000 * 2
        silence = bytes(frame_bytes)
        pending = b""
        done: asyncio.Future[float] | None = None
        start = time.monotonic()
        n = 0
        while not self._ended.is_set():
            if not pending and not self._queue.empty():
                pending, done = self._queue.get_nowait()
                self.speech_starts.append(start + n * FRAME_MS / 1000)
            if pending:
                frame, pending = pending[:frame_bytes].ljust(frame_bytes, b"\0"), pending[frame_bytes:]
                if not pending and done is not None:
                    end = start + (n + 1) * FRAME_MS / 1000
                    self.speech_ends.append(end)
                    done.set_result(end)
            else:
                frame = silence
            try:
                await self._ws.send(frame)
            except websockets.ConnectionClosed:
                return
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_MS / 1000 - time.monotonic()))

    async def send_text(self, text: str) -> None:
        await self._ws.send(text)

    async def say(self, text: str) -> float:
        """Speak `text`; returns the monotonic time its last frame was sent."""
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((flite_speech(text, self.sample_rate), done))
        return await done

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            r.event
            for r in self.received
            if r.event is not None and (kind is None or r.event.get("event_type") == kind)
        ]

    def _find(self, kind: str, after: float) -> float | None:
        for r in self.received:
            if r.at > after and r.event is not None and r.event.get("event_type") == kind:
                return r.at
        return None

    async def wait_event(self, kind: str, after: float = 0.0) -> float:
        """Wait (wrap in `asyncio.timeout`) for an event of `kind` that arrived after `after`."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: self._find(kind, after) is not None or self._ended.is_set())
        found = self._find(kind, after)
        if found is None:
            raise AssertionError(f"call ended without {kind} after {after:.2f}; events: {self.events()}")
        return found

    async def wait_until(self, predicate: "Callable[[], bool]") -> None:
        """Wait (wrap in `asyncio.timeout`) until `predicate()` holds, re-checked as messages arrive."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: predicate() or self._ended.is_set())
        if not predicate():
            raise AssertionError(f"call ended first; events: {self.events()}")

    async def wait_ended(self) -> None:
        await self._ended.wait()

    def agent_audio(self, start: float = 0.0, end: float = float("inf")) -> bytes:
        return b"".join(r.audio for r in self.received if r.audio is not None and start <= r.at <= end)

    def first_loud_audio_after(self, t: float, threshold: int = 300) -> float | None:
        for r in self.received:
            if r.audio is not None and r.at > t:
                samples = np.frombuffer(r.audio, dtype="<i2").astype(np.float32)
                if samples.size and float(np.sqrt(np.mean(samples**2))) >= threshold:
                    return r.at
        return None
