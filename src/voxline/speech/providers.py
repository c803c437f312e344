"""The speech providers of one server process, loaded once at start-up and shared by all calls."""

import asyncio
import logging
import time
from dataclasses import dataclass

from voxline.settings import Settings
from voxline.speech.interfaces import Asr, Tts, Vad
from voxline.speech.piper import PiperTts
from voxline.speech.silero import SileroVad
from voxline.speech.whisper import WhisperAsr

__all__ = ["SpeechProviders", "load_speech"]

log = logging.getLogger(__name__)


@dataclass
class SpeechProviders:
    vad: Vad
    asr: Asr
    tts: Tts

    async def close(self) -> None:
        """Stop the TTS worker processes and the ASR pool."""
        close_tts = getattr(self.tts, "close", None)
        if close_tts is not None:
            await close_tts()
        close_asr = getattr(self.asr, "close", None)
        if close_asr is not None:
            close_asr()


async def load_speech(settings: Settings) -> SpeechProviders:
    """Load VAD and Whisper (in a thread: it takes about half a second) while the TTS workers start."""
    started = time.perf_counter()
    tts_task = asyncio.create_task(
        PiperTts.start(workers=settings.tts_workers, default_voice_id=settings.default_voice_id)
    )
    try:
        vad = await asyncio.to_thread(SileroVad)
        asr = await asyncio.to_thread(
            WhisperAsr,
            settings.asr_model,
            workers=settings.asr_workers,
            window_margin_s=settings.asr_window_margin_s if settings.asr_short_window else None,
            window_min_s=settings.asr_window_min_s,
            beam_size=settings.asr_beam_size,
        )
    except BaseException:
        tts_task.cancel()
        results = await asyncio.gather(tts_task, return_exceptions=True)
        if isinstance(results[0], PiperTts):
            await results[0].close()
        raise
    tts = await tts_task
    log.info("speech providers loaded in %.2f s", time.perf_counter() - started)
    return SpeechProviders(vad=vad, asr=asr, tts=tts)
