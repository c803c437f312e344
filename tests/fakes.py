"""Exact fakes for the conversation engine's providers, its output sink, and a caller.

Deterministic by construction: the VAD is an energy threshold, the ASR returns scripted texts,
the TTS speaks a fixed tone per word for a known time, the LLM replies from a script. Tests
then assert exact transcripts and timings without models or network.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from voxline.llm.interfaces import (
    LlmEnded,
    LlmEvent,
    ResponseChunk,
    Utterance,
)
from voxline.speech.interfaces import ENGINE_SAMPLE_RATE, FloatAudio, SynthesisChunk, Transcript, Word


# -- VAD ----------------------------------------------------------------------------------------
class FakeVadStream:
    def __init__(self, threshold: float) -> None:
        self._threshold = threshold

    def probability(self, frame: FloatAudio) -> float:
        rms = float(np.sqrt(np.mean(np.square(frame)))) if len(frame) else 0.0
        return 1.0 if rms >= self._threshold else 0.0

    def reset(self) -> None:
        pass


class FakeVad:
    """Speech = RMS above `threshold` (tone bursts are speech, zeros are silence)."""

    frame_samples = 512

    def __init__(self, threshold: float = 0.02) -> None:
        self.threshold = threshold

    def new_stream(self) -> FakeVadStream:
        return FakeVadStream(self.threshold)


# -- ASR ----------------------------------------------------------------------------------------
class FakeAsr:
    """Returns `texts` in order, one per call (then ""); words spread over the audio."""

    def __init__(self, texts: list[str] | None = None, *, delay: float = 0.0, error: Exception | None = None) -> None:
        self.texts = list(texts or [])
        self.delay = delay
        self.error = error
        self.calls: list[float] = []
        """Duration in seconds of each audio passed."""

    async def transcribe(self, audio: FloatAudio, *, prompt: str | None = None) -> Transcript:
        self.calls.append(len(audio) / ENGINE_SAMPLE_RATE)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        text = self.texts.pop(0) if self.texts else ""
        tokens = text.split()
        dur = len(audio) / ENGINE_SAMPLE_RATE
        step = dur / max(len(tokens), 1)
        return Transcript(text, tuple(Word(t, i * step, (i + 1) * step) for i, t in enumerate(tokens)))


# -- TTS ----------------------------------------------------------------------------------------
@dataclass
class TtsRequest:
    text: str
    speed: float
    finished: bool = False
    cancelled: bool = False


class FakeTts:
    """One chunk per text piece: a tone per word (frequency from the word), `word_s` per word at
    speed 1, exact word timings. Requests record whether they finished or were cancelled."""

    def __init__(self, word_s: float = 0.1, sample_rate: int = 16_000, delay: float = 0.0) -> None:
        self.word_s = word_s
        self.sample_rate = sample_rate
        self.delay = delay
        self.requests: list[TtsRequest] = []

    def voices(self) -> list[str]:
        return ["fake"]

    def word_tone(self, word: str, seconds: float) -> np.ndarray:
        freq = 200 + sum(map(ord, word)) % 600
        t = np.arange(round(seconds * self.sample_rate)) / self.sample_rate
        return (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)

    async def synthesize(
        self, text: str, *, voice_id: str, speed: float = 1.0, volume: float = 1.0
    ) -> AsyncIterator[SynthesisChunk]:
        request = TtsRequest(text, speed)
        self.requests.append(request)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            dur = self.word_s / speed
            tokens = text.split()
            pcm = np.concatenate([self.word_tone(w, dur) for w in tokens]) if tokens else np.zeros(0, np.int16)
            words = tuple(Word(w, i * dur, (i + 1) * dur) for i, w in enumerate(tokens))
            yield SynthesisChunk(pcm=pcm, sample_rate=self.sample_rate, text=text, words=words)
            request.finished = True
        except (asyncio.CancelledError, GeneratorExit):
            request.cancelled = True
            raise


# -- LLM ----------------------------------------------------------------------------------------
@dataclass
class Reply:
    """The scripted answer to one request: `text` split into `chunks` streamed `chunk_delay` apart
    after `delay`; `before` events (tool calls, metadata) are sent first."""

    text: str = ""
    chunks: int = 1
    delay: float = 0.0
    chunk_delay: float = 0.0
    end_call: bool = False
    no_interruption_allowed: bool = False
    before: list[LlmEvent] = field(default_factory=list)
    between: list[LlmEvent] = field(default_factory=list)
    """Events sent after the first chunk (a tool call in the middle of a reply)."""
    transfer_number: str | None = None


@dataclass
class LlmRequest:
    response_id: int
    transcript: list[Utterance]
    reminder: bool
    transcript_with_tool_calls: list[dict[str, Any]] | None = None


class FakeResponseEngine:
    """Scripted LLM: `begin` is the begin message (None = never sent), `replies` answer requests
    in order (a str is a plain reply). Records every request, update and close."""

    def __init__(self, begin: str | Reply | None = "", replies: list[str | Reply] | None = None) -> None:
        self.begin = Reply(begin) if isinstance(begin, str) else begin
        self.replies = [Reply(r) if isinstance(r, str) else r for r in replies or []]
        self.requests: list[LlmRequest] = []
        self.updates: list[tuple[list[Utterance], str | None]] = []
        self.started = False
        self.closed = False
        self._events: asyncio.Queue[LlmEvent | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, call: dict[str, Any]) -> None:
        self.started = True
        if self.begin is not None:
            self._tasks.append(asyncio.create_task(self._send(0, self.begin)))

    async def events(self) -> AsyncIterator[LlmEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def update(
        self,
        transcript: list[Utterance],
        turntaking: Literal["agent_turn", "user_turn"] | None,
        *,
        transcript_with_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        self.updates.append((transcript, turntaking))

    async def request_response(
        self,
        response_id: int,
        transcript: list[Utterance],
        *,
        reminder: bool = False,
        transcript_with_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        self.requests.append(LlmRequest(response_id, transcript, reminder, transcript_with_tool_calls))
        if self.replies:
            self._tasks.append(asyncio.create_task(self._send(response_id, self.replies.pop(0))))

    async def close(self) -> None:
        self.closed = True
        for task in self._tasks:
            task.cancel()

    def push(self, event: LlmEvent) -> None:
        """Inject an event now (e.g. `LlmEnded`, a stale chunk)."""
        self._events.put_nowait(event)

    def end(self, reason: Any, detail: str = "") -> None:
        self.push(LlmEnded(reason, detail))

    @property
    def turntakings(self) -> list[str]:
        return [t for _, t in self.updates if t is not None]

    async def _send(self, response_id: int, reply: Reply) -> None:
        for event in reply.before:
            self._events.put_nowait(event)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        words = reply.text.split(" ")
        n = max(1, min(reply.chunks, len(words)))
        size = -(-len(words) // n)
        starts = range(0, len(words), size)
        parts = [" ".join(words[i : i + size]) + (" " if i + size < len(words) else "") for i in starts]
        for i, part in enumerate(parts):
            if i == 1:
                for event in reply.between:
                    self._events.put_nowait(event)
            if i and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            last = i == len(parts) - 1
            self._events.put_nowait(
                ResponseChunk(
                    response_id,
                    part,
                    last,
                    end_call=reply.end_call and last,
                    no_interruption_allowed=reply.no_interruption_allowed,
                    transfer_number=reply.transfer_number if last else None,
                )
            )


# -- output sink --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SentFrame:
    response_id: int
    at: float
    pcm: bytes


class FakeSink:
    """Records frames (with response ids and monotonic times), events and clears."""

    def __init__(self) -> None:
        self.frames: list[SentFrame] = []
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.clears: list[float] = []

    async def send_audio(self, pcm16le: bytes, response_id: int) -> None:
        self.frames.append(SentFrame(response_id, time.monotonic(), pcm16le))

    async def send_event(self, event: dict[str, Any]) -> None:
        self.events.append((time.monotonic(), event))

    async def clear(self) -> None:
        self.clears.append(time.monotonic())

    def event_types(self) -> list[str]:
        return [e["event_type"] for _, e in self.events]

    def count(self, event_type: str) -> int:
        return self.event_types().count(event_type)

    def frames_of(self, response_id: int) -> list[SentFrame]:
        return [f for f in self.frames if f.response_id == response_id]


# -- caller -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Speech:
    seconds: float
    amplitude: float = 0.3


@dataclass(frozen=True)
class Silence:
    seconds: float


@dataclass(frozen=True)
class Until:
    """Send silence until `condition()` holds (e.g. the agent finished speaking)."""

    condition: Callable[[], bool]
    timeout: float = 10.0


Step = Speech | Silence | Until


class ScriptedCaller:
    """Real-time 20 ms PCM16LE frames: tone bursts for speech, zeros for silence. After the
    script it hangs up (iterator ends) unless `hold`, in which case it stays silent forever."""

    def __init__(self, steps: list[Step], *, sample_rate: int = 16_000, hold: bool = False) -> None:
        self.steps = steps
        self.sample_rate = sample_rate
        self.hold = hold
        self.speech_starts: list[float] = []
        self.frame_n = sample_rate // 50

    def _tone(self, n: int, offset: int, amplitude: float) -> bytes:
        t = (np.arange(n) + offset) / self.sample_rate
        return (amplitude * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        start = time.monotonic()
        sent = 0
        silence = bytes(2 * self.frame_n)

        async def pace() -> None:
            target = start + sent * 0.02
            if (wait := target - time.monotonic()) > 0:
                await asyncio.sleep(wait)

        for step in self.steps:
            if isinstance(step, Until):
                deadline = time.monotonic() + step.timeout
                while not step.condition():
                    if time.monotonic() > deadline:
                        raise AssertionError("caller waited too long")
                    await pace()
                    yield silence
                    sent += 1
                continue
            frames = max(1, round(step.seconds / 0.02))
            for i in range(frames):
                await pace()
                if isinstance(step, Speech):
                    if i == 0:
                        self.speech_starts.append(time.monotonic())
                    yield self._tone(self.frame_n, i * self.frame_n, step.amplitude)
                else:
                    yield silence
                sent += 1
        while self.hold:
            await pace()
            yield silence
            sent += 1


class NoAudioCaller:
    """A client that joins but never sends a frame (until cancelled)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""


# -- harness ------------------------------------------------------------------------------------
FAST_KNOBS: dict[str, Any] = {
    "min_speech_s": 0.06,
    "speech_stop_s": 0.1,
    "turn_wait_min_s": 0.1,
    "turn_wait_max_s": 0.3,
    "interrupt_min_s": 0.09,
    "tick_s": 0.005,
    "no_audio_timeout_s": 2.0,
}
"""Small timing knobs so behaviour tests run in real time in well under a second per turn."""


@dataclass
class Harness:
    """One conversation wired to fakes; `run(caller)` returns the result within `limit_s`."""

    llm: FakeResponseEngine
    asr: FakeAsr = field(default_factory=FakeAsr)
    tts: FakeTts = field(default_factory=FakeTts)
    sink: FakeSink = field(default_factory=FakeSink)
    agent: dict[str, Any] = field(default_factory=dict)
    input_rate: int = 16_000
    output_rate: int = 16_000
    knobs: dict[str, Any] = field(default_factory=dict)
    conversation: Any = None

    def __post_init__(self) -> None:
        from voxline.clock import SystemClock
        from voxline.conversation import Conversation, ConversationConfig

        agent = {"voice_id": "fake", "reminder_max_count": 0, **self.agent}
        config = ConversationConfig.from_agent(
            agent, self.input_rate, self.output_rate, {}, **{**FAST_KNOBS, **self.knobs}
        )
        self.conversation = Conversation(
            config, vad=FakeVad(), asr=self.asr, tts=self.tts, llm=self.llm, clock=SystemClock(), sink=self.sink
        )

    def agent_stops(self, n: int) -> Callable[[], bool]:
        """Condition: the agent has finished (or been cut off) `n` times."""
        return lambda: self.sink.count("agent_stop_talking") >= n

    async def run(self, caller: Any, limit_s: float = 15.0) -> Any:
        async with asyncio.timeout(limit_s):
            return await self.conversation.run(caller)
