"""Agent speech for one response: text pieces → TTS → resampled 20 ms frames paced to the sink.

A `Playback` belongs to exactly one response id and stamps every frame with it. Cancelling it
cancels its two tasks (TTS and playout) and so drops everything still queued: nothing of a
superseded response can reach the sink afterwards. It counts the samples actually sent per
piece, so the transcript can be cut to what was played.
"""

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from voxline.clock import Clock
from voxline.conversation.audio import resample_pcm
from voxline.conversation.config import ConversationConfig
from voxline.conversation.marks import TurnMarks
from voxline.conversation.segmenter import TextSegmenter
from voxline.conversation.transcript import WordDict, word_dict
from voxline.speech.interfaces import SynthesisChunk, Tts, Word

if TYPE_CHECKING:
    from voxline.conversation.recorder import Recorder


class OutputSink(Protocol):
    """Where the engine's output goes; a transport adapter implements it."""

    async def send_audio(self, pcm16le: bytes, response_id: int) -> None:
        """One 20 ms frame of agent audio at the output rate, mono PCM16LE."""
        ...

    async def send_event(self, event: dict[str, Any]) -> None:
        """A web-client event: {"event_type": "agent_start_talking" | "agent_stop_talking" |
        "update" | "metadata", ...}."""
        ...

    async def clear(self) -> None:
        """Drop any agent audio the client has buffered but not played (barge-in)."""
        ...


def estimate_words(text: str, duration_s: float) -> tuple[Word, ...]:
    """Word timings spread by character count, for TTS engines that give none."""
    tokens = text.split()
    total = sum(len(t) for t in tokens)
    if not tokens or total == 0:
        return ()
    words: list[Word] = []
    t = 0.0
    for token in tokens:
        d = duration_s * len(token) / total
        words.append(Word(token, t, t + d))
        t += d
    return tuple(words)


AUDIBLE_RMS = 300.0
"""PCM16 RMS above which a frame counts as audible (the `e2e` latency ends at the first such frame)."""


def is_audible(frame: np.ndarray) -> bool:
    samples = frame.astype(np.float32)
    return bool(samples.size) and float(np.sqrt(np.mean(samples * samples))) >= AUDIBLE_RMS


class _Break:
    """Marks, in the text and audio queues, where one segment of a response ends."""


BREAK = _Break()


@dataclass
class PlayedPiece:
    """One synthesized chunk and how much of it has left for the client."""

    text: str
    words: tuple[Word, ...]
    pcm: np.ndarray
    sample_rate: int
    frame_s: float = 0.02
    played_samples: int = 0
    frame_starts: list[float] = field(default_factory=list)
    """Call-clock time each frame was sent: word times stay true across pauses and underruns."""

    @property
    def start_call_s(self) -> float | None:
        return self.frame_starts[0] if self.frame_starts else None

    def call_time(self, t: float) -> float:
        """Call-clock time of offset `t` seconds into this piece's audio (must have been sent)."""
        i = min(max(int(t / self.frame_s), 0), len(self.frame_starts) - 1)
        return self.frame_starts[i] + (t - i * self.frame_s)

    @property
    def complete(self) -> bool:
        return self.played_samples >= len(self.pcm)

    def played_words(self) -> list[Word]:
        if self.complete:
            return list(self.words)
        pos = self.played_samples / self.sample_rate
        return [w for w in self.words if w.end <= pos + 1e-9]


@dataclass
class PlaybackHooks:
    """What the engine wants to hear about; the first-frame hook is awaited before frame one."""

    on_first_frame: Callable[["Playback"], Awaitable[None]]
    on_progress: Callable[["Playback"], None]
    on_finished: Callable[["Playback"], None]
    on_failed: Callable[["Playback", BaseException], None]


@dataclass
class PlaybackFlags:
    """What the LLM attached to this response; end_call acts only if the content fully plays."""

    content_complete: bool = False
    end_call: bool = False
    end_reason: str = "agent_hangup"
    """Why the call ends after this response when `end_call` (call_transfer for a transfer)."""
    no_interruption_allowed: bool = False


class Playback:
    """One response's speech: two tasks (TTS, playout) joined by a queue, cancelled as a unit."""

    def __init__(
        self,
        response_id: int,
        *,
        tts: Tts,
        config: ConversationConfig,
        clock: Clock,
        sink: OutputSink,
        call_start: float,
        marks: TurnMarks,
        hooks: PlaybackHooks,
        start_at: float | None = None,
        recorder: "Recorder | None" = None,
    ) -> None:
        self.response_id = response_id
        self._recorder = recorder
        self._tts, self._config, self._clock, self._sink = tts, config, clock, sink
        self._call_start, self.marks, self._hooks, self._start_at = call_start, marks, hooks, start_at
        self.flags = PlaybackFlags()
        self.pieces: list[PlayedPiece] = []
        self.started = False
        self.finished = False
        self.cancelled = False
        self._text_q: asyncio.Queue[str | _Break | None] = asyncio.Queue()
        self._audio_q: asyncio.Queue[PlayedPiece | _Break | None] = asyncio.Queue()
        self._resume = asyncio.Event()
        self._resume.set()
        self._tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(self._synthesize(), name=f"tts-{response_id}"),
            asyncio.create_task(self._play(), name=f"play-{response_id}"),
        ]
        self.utterances: list[dict[str, Any]] = []
        """The transcript items the engine keeps in step with what was played: one per segment
        (a tool call between two parts of a response splits it into two utterances)."""
        self.breaks: list[int] = []
        """Index in `pieces` where each segment after the first starts (filled as audio plays)."""
        self.segment_has_utterance = False
        """Whether the current segment's transcript item exists (it is made with its first text)."""
        self.interrupt_id: int | None = None
        """Set when this playback speaks an `agent_interrupt` rather than a response."""
        self._segmenter = TextSegmenter()

    # -- control (synchronous: takes effect before any further await) --------------------------
    @property
    def playing(self) -> bool:
        return self.started and not self.finished and not self.cancelled

    def add_text(self, content: str) -> int:
        """Queue the speakable pieces of streamed text; returns how many became speakable."""
        return self._queue(self._segmenter.push(content))

    def complete(self, *, end_call: bool = False, end_reason: str = "agent_hangup") -> int:
        """content_complete: speak the remainder, then finish (and end the call if `end_call`)."""
        n = self._queue(self._segmenter.flush())
        self.flags.content_complete = True
        self.flags.end_call = end_call
        self.flags.end_reason = end_reason
        self._text_q.put_nowait(None)
        return n

    def add_break(self) -> None:
        """End the current segment: text added from now on is a new utterance (a tool call
        happened between the two). What was pending is spoken as it is."""
        self._queue(self._segmenter.flush())
        self._text_q.put_nowait(BREAK)
        self.segment_has_utterance = False

    def _queue(self, pieces: list[str]) -> int:
        for piece in pieces:
            self._text_q.put_nowait(piece)
        return len(pieces)

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def cancel(self) -> None:
        self.cancelled = True
        for task in self._tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def played_segments(self) -> list[tuple[str, list[WordDict]]]:
        """`played()` of each segment that has begun playing, in order."""
        bounds = [0, *self.breaks, len(self.pieces)]
        return [self._played(self.pieces[a:b]) for a, b in itertools.pairwise(bounds)]

    def played(self) -> tuple[str, list[WordDict]]:
        """Content and call-clock word timings of what has actually been sent."""
        return self._played(self.pieces)

    @staticmethod
    def _played(pieces: list[PlayedPiece]) -> tuple[str, list[WordDict]]:
        texts: list[str] = []
        words: list[WordDict] = []
        for piece in pieces:
            if piece.start_call_s is None:
                break
            heard = piece.played_words()
            words.extend(word_dict(w.text, piece.call_time(w.start), piece.call_time(w.end - 1e-6)) for w in heard)
            if piece.complete:
                texts.append(piece.text)
            elif heard:
                texts.append(" ".join(w.text for w in heard))
            if not piece.complete:
                break
        return " ".join(texts), words

    # -- tasks ----------------------------------------------------------------------------------
    async def _synthesize(self) -> None:
        cfg = self._config
        try:
            while (text := await self._text_q.get()) is not None:
                if isinstance(text, _Break):
                    self._audio_q.put_nowait(text)
                    continue
                self.marks.mark("tts_request", self._clock.monotonic())
                stream = self._tts.synthesize(text, voice_id=cfg.voice_id, speed=cfg.voice_speed, volume=cfg.volume)
                try:
                    while True:
                        async with asyncio.timeout(cfg.tts_timeout_s):
                            try:
                                chunk = await anext(stream)
                            except StopAsyncIteration:
                                break
                        self.marks.mark("tts_first_audio", self._clock.monotonic())
                        self._audio_q.put_nowait(self._piece(chunk, text))
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        with contextlib.suppress(Exception):
                            await aclose()
            self._audio_q.put_nowait(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # TTS failed or stalled: end this response, not the call
            self._hooks.on_failed(self, exc)

    def _piece(self, chunk: SynthesisChunk, fallback_text: str) -> PlayedPiece:
        pcm = resample_pcm(chunk.pcm, chunk.sample_rate, self._config.output_sample_rate)
        rate = self._config.output_sample_rate
        text = chunk.text or fallback_text
        words = chunk.words or estimate_words(text, len(pcm) / rate)  # seconds: unchanged by resampling
        return PlayedPiece(text=text, words=words, pcm=pcm, sample_rate=rate, frame_s=self._config.frame_s)

    async def _play(self) -> None:
        cfg, clock = self._config, self._clock
        frame_n = max(1, round(cfg.output_sample_rate * cfg.frame_s))
        next_t: float | None = None
        try:
            if self._start_at is not None and (delay := self._start_at - clock.monotonic()) > 0:
                await asyncio.sleep(delay)
            while (piece := await self._audio_q.get()) is not None:
                if isinstance(piece, _Break):
                    self.breaks.append(len(self.pieces))
                    continue
                self.pieces.append(piece)
                for offset in range(0, len(piece.pcm), frame_n):
                    now = clock.monotonic()
                    if next_t is None or now > next_t + cfg.frame_s:
                        next_t = now  # first frame, or an underrun: restart the pace from now
                    if next_t > now:
                        await asyncio.sleep(next_t - now)
                    if not self._resume.is_set():
                        await self._resume.wait()
                        next_t = clock.monotonic()
                    frame = piece.pcm[offset : offset + frame_n]
                    if len(frame) < frame_n:
                        frame = np.concatenate([frame, np.zeros(frame_n - len(frame), np.int16)])
                    if not self.started:
                        self.started = True
                        await self._hooks.on_first_frame(self)
                    sent_at = clock.monotonic() - self._call_start
                    piece.frame_starts.append(sent_at)
                    pcm = frame.astype("<i2").tobytes()
                    async with asyncio.timeout(cfg.sink_timeout_s):
                        await self._sink.send_audio(pcm, self.response_id)
                    now = clock.monotonic()
                    self.marks.mark("first_frame_sent", now)
                    if self.marks.first_audible_frame_sent is None and is_audible(frame):
                        self.marks.first_audible_frame_sent = now
                    if self._recorder is not None:
                        self._recorder.agent_audio(pcm, cfg.output_sample_rate, sent_at)
                    piece.played_samples = min(len(piece.pcm), offset + frame_n)
                    next_t += cfg.frame_s
                self._hooks.on_progress(self)
            self.finished = True
            self._hooks.on_finished(self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._hooks.on_failed(self, exc)
