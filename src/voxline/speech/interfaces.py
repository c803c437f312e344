"""The small typed interfaces every speech provider implements (VAD, ASR, TTS).

The conversation engine only sees these, so a provider can be swapped (a cloud ASR, a GPU TTS)
without touching it, and engine tests can use exact fakes. Audio inside the engine is mono
float32 at `ENGINE_SAMPLE_RATE` for VAD and ASR; TTS returns int16 PCM at its own rate.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

ENGINE_SAMPLE_RATE = 16_000
FloatAudio = npt.NDArray[np.float32]
"""Mono float32 samples in [-1, 1]."""
PcmAudio = npt.NDArray[np.int16]
"""Mono int16 samples."""


@dataclass(frozen=True)
class Word:
    """A word with its time span in seconds, relative to the start of the audio it came from."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...] = ()


class VadStream(Protocol):
    """Speech probability for consecutive frames of one audio stream (the model keeps state)."""

    def probability(self, frame: FloatAudio) -> float:
        """Probability in [0, 1] that `frame` (exactly `Vad.frame_samples` samples) is speech."""
        ...

    def reset(self) -> None: ...


class Vad(Protocol):
    frame_samples: int
    """Samples per frame at ENGINE_SAMPLE_RATE (512 = 32 ms for Silero)."""

    def new_stream(self) -> VadStream: ...


class Asr(Protocol):
    async def transcribe(self, audio: FloatAudio, *, prompt: str | None = None) -> Transcript:
        """Transcribe one utterance (ENGINE_SAMPLE_RATE, mono). Runs off the event loop."""
        ...


@dataclass(frozen=True)
class SynthesisChunk:
    """Audio for one piece of text (a sentence or clause), in order."""

    pcm: PcmAudio
    sample_rate: int
    text: str
    words: tuple[Word, ...] = ()
    """Word timings within this chunk's audio when the TTS knows them (else empty)."""


class Tts(Protocol):
    def voices(self) -> list[str]:
        """Voice ids this provider can speak."""
        ...

    def synthesize(
        self, text: str, *, voice_id: str, speed: float = 1.0, volume: float = 1.0
    ) -> AsyncIterator[SynthesisChunk]:
        """Speak `text`, one chunk per sentence as soon as it is ready. Closing the iterator
        (`aclose()`, or cancelling the task that iterates) stops the synthesis."""
        ...
