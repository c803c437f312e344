"""Speech providers on the real models: Silero VAD, Whisper tiny.en, Piper (in worker processes).

Test speech comes from engines other than Piper (Debian's flite and espeak-ng, run at test time)
and from real recordings in Debian's pocketsphinx-testdata; scripts/setup-debian-packages
installs them. WER is word-level edit distance after lower-casing and dropping punctuation.
"""

import asyncio
import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soxr

from voxline.settings import Settings
from voxline.speech.audio import (
    StreamResampler,
    dbfs,
    float32_to_pcm16le,
    mulaw_decode,
    mulaw_encode,
    pcm16_to_float32,
    pcm16le_to_float32,
    rms,
)
from voxline.speech.interfaces import ENGINE_SAMPLE_RATE, FloatAudio, SynthesisChunk, Transcript, Word
from voxline.speech.piper import PiperTts, TtsError, TtsWorkerCrashed
from voxline.speech.piper_worker import split_sentences
from voxline.speech.providers import load_speech
from voxline.speech.silero import SileroVad
from voxline.speech.whisper import WhisperAsr, pad_with_silence, plausible, window_frames

session_loop = pytest.mark.asyncio(loop_scope="session")

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
LIBRIVOX = TESTDATA / "librivox"
ALSA_NOISE = Path("/usr/share/sounds/alsa/Noise.wav")
FLITE_SENTENCES = [
    "Thank you for calling the city library, how can I help you today?",
    "Please hold while I transfer you to the billing department.",
    "Your package was delivered to the front desk this morning.",
]
ESPEAK_SENTENCES = [
    "Please confirm your email address so we can send the receipt.",
    "I would like to change my delivery address.",
]
WER_FLITE = 0.15
WER_ESPEAK = 0.30
WER_REAL = 0.20
WER_PIPER = 0.15
_WORD_FIXES = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def words_of(text: str) -> list[str]:
    """Lower-case words for WER; "four's" counts as "four is" (Whisper writes the contraction for
    what was said in full, sometimes: one word wrong, not two)."""
    cleaned = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))
    cleaned = re.sub(r"\b(\w+)'s\b", r"\1 is", cleaned)
    return [_WORD_FIXES.get(w, w) for w in cleaned.split()]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + insertions + deletions) / reference words."""
    ref, hyp = words_of(reference), words_of(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def read_wav(data: bytes | Path) -> FloatAudio:
    """A mono 16-bit WAV as float32 at 16 kHz."""
    with wave.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        rate, audio = w.getframerate(), pcm16le_to_float32(w.readframes(w.getnframes()))
    return to_16k(audio, rate)


def to_16k(audio: FloatAudio, rate: int) -> FloatAudio:
    return audio if rate == ENGINE_SAMPLE_RATE else soxr.resample(audio, rate, ENGINE_SAMPLE_RATE).astype(np.float32)


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/setup-debian-packages)")


def flite(text: str, tmp_path: Path) -> FloatAudio:
    need("flite")
    out = tmp_path / f"flite-{abs(hash(text))}.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(out)], check=True, capture_output=True)
    return read_wav(out)


def espeak(text: str) -> FloatAudio:
    need("espeak-ng")
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text], check=True, capture_output=True).stdout
    return read_wav(wav)


def librivox() -> list[tuple[FloatAudio, str]]:
    """The real recordings with their transcripts (`<s> text </s> (fileid)` lines)."""
    if not (LIBRIVOX / "transcription").is_file():
        pytest.skip("pocketsphinx-testdata is not installed (scripts/setup-debian-packages)")
    found = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        match = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if match:
            found.append((read_wav(LIBRIVOX / f"{match.group(2)}.wav"), match.group(1).strip()))
    return found


def speech_fraction(vad: SileroVad, audio: FloatAudio) -> float:
    stream = vad.new_stream()
    n = vad.frame_samples
    probs = [stream.probability(audio[i : i + n]) for i in range(0, len(audio) - n + 1, n)]
    return float(np.mean(np.array(probs) > 0.5))


async def speak_all(tts: PiperTts, text: str, **options: float) -> list[SynthesisChunk]:
    return [c async for c in tts.synthesize(text, voice_id="piper-joe", **options)]


def pcm_of(chunks: list[SynthesisChunk]) -> np.ndarray:
    return np.concatenate([c.pcm for c in chunks])


# Audio helpers


def test_pcm16_round_trips_and_clips() -> None:
    audio = np.array([0.0, 0.5, -0.5, 0.999, -1.0], dtype=np.float32)
    back = pcm16le_to_float32(float32_to_pcm16le(audio))
    assert back.dtype == np.float32 and np.allclose(back, audio, atol=1 / 32768)
    assert list(pcm16le_to_float32(float32_to_pcm16le(np.array([2.0, -2.0])))) == [32767 / 32768, -1.0]
    with pytest.raises(ValueError):
        pcm16le_to_float32(b"\x00\x01\x02")


def test_mulaw_decodes_g711_code_words_and_round_trips() -> None:
    assert mulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])).tolist() == [0.0, 0.0, 32124 / 32768, -32124 / 32768]
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / 8000)).astype(np.float32)
    back = mulaw_decode(mulaw_encode(tone))
    assert np.max(np.abs(back - tone)) < 0.02  # µ-law step at half scale is about 1 %


def test_levels_in_dbfs() -> None:
    sine = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    assert dbfs(sine) == pytest.approx(-3.01, abs=0.05)
    assert rms((sine * 32767).astype(np.int16)) == pytest.approx(rms(sine), rel=1e-3)
    assert dbfs(np.zeros(100, dtype=np.float32)) == -120.0


def test_streaming_resampler_matches_one_shot_resampling() -> None:
    rng = np.random.default_rng(1)
    audio = (0.3 * np.sin(2 * np.pi * 300 * np.arange(22050) / 22050)).astype(np.float32)
    audio += (0.01 * rng.standard_normal(audio.size)).astype(np.float32)
    stream = StreamResampler(22050, 8000)
    pieces = [stream.process(audio[i : i + 441]) for i in range(0, audio.size, 441)] + [stream.flush()]
    chunked = np.concatenate(pieces)
    assert abs(chunked.size - 8000) <= 1
    one_shot = soxr.resample(audio, 22050, 8000)
    assert np.max(np.abs(chunked[: one_shot.size] - one_shot[: chunked.size])) < 1e-3
    down = StreamResampler(48000, dtype="int16")
    pcm = np.concatenate([down.process((audio * 10000).astype(np.int16)), down.flush()])
    assert pcm.dtype == np.int16 and abs(pcm.size - audio.size / 3) <= 1
    assert StreamResampler(16000, 16000).process(audio[:10]).tolist() == audio[:10].tolist()


# VAD


def test_vad_flags_real_and_synthetic_speech(speech_vad: SileroVad, tmp_path: Path) -> None:
    for audio, _ in librivox()[:3]:
        assert speech_fraction(speech_vad, audio) > 0.6
    assert speech_fraction(speech_vad, flite(FLITE_SENTENCES[0], tmp_path)) > 0.6


def test_vad_ignores_silence_and_noise(speech_vad: SileroVad) -> None:
    rng = np.random.default_rng(7)
    assert speech_fraction(speech_vad, np.zeros(16000 * 2, dtype=np.float32)) == 0.0
    white = (0.03 * rng.standard_normal(16000 * 3)).astype(np.float32)
    brown = np.cumsum(rng.standard_normal(16000 * 3)).astype(np.float32)
    brown = 0.1 * brown / np.max(np.abs(brown))
    assert speech_fraction(speech_vad, white) < 0.05
    assert speech_fraction(speech_vad, brown.astype(np.float32)) < 0.05
    if ALSA_NOISE.is_file():
        with wave.open(str(ALSA_NOISE)) as w:
            raw = pcm16le_to_float32(w.readframes(w.getnframes()))
            noise = to_16k(raw.reshape(-1, w.getnchannels()).mean(axis=1).astype(np.float32), w.getframerate())
        assert speech_fraction(speech_vad, noise) < 0.05


def test_vad_streams_keep_separate_state(speech_vad: SileroVad) -> None:
    speech = librivox()[1][0]
    n = speech_vad.frame_samples
    frames = [speech[i : i + n] for i in range(0, 40 * n, n)]
    alone = speech_vad.new_stream()
    expected = [alone.probability(f) for f in frames]
    a, b = speech_vad.new_stream(), speech_vad.new_stream()
    interleaved = []
    for f in frames:
        b.probability(np.zeros(n, dtype=np.float32))
        interleaved.append(a.probability(f))
    assert interleaved == pytest.approx(expected, abs=1e-5)
    a.reset()
    assert a.probability(frames[0]) == pytest.approx(expected[0], abs=1e-5)
    with pytest.raises(ValueError):
        a.probability(np.zeros(480, dtype=np.float32))


# ASR


def assert_word_timings(words: tuple[Word, ...], duration: float) -> None:
    assert words
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(0.0 <= w.start <= w.end <= duration + 1e-6 for w in words)


@session_loop
async def test_whisper_transcribes_flite_and_espeak_speech(speech_asr: WhisperAsr, tmp_path: Path) -> None:
    clips = [flite(text, tmp_path) for text in FLITE_SENTENCES]
    results = await asyncio.gather(*(speech_asr.transcribe(clip) for clip in clips))
    errors = [wer(text, r.text) for text, r in zip(FLITE_SENTENCES, results, strict=True)]
    assert np.mean(errors) < WER_FLITE, [r.text for r in results]
    for clip, result in zip(clips, results, strict=True):
        assert_word_timings(result.words, clip.size / ENGINE_SAMPLE_RATE)
    results = await asyncio.gather(*(speech_asr.transcribe(espeak(text)) for text in ESPEAK_SENTENCES))
    errors = [wer(text, r.text) for text, r in zip(ESPEAK_SENTENCES, results, strict=True)]
    assert np.mean(errors) < WER_ESPEAK, [r.text for r in results]


@session_loop
async def test_whisper_transcribes_real_recordings(speech_asr: WhisperAsr) -> None:
    recordings = [librivox()[i] for i in (0, 1, 4)]
    results = await asyncio.gather(*(speech_asr.transcribe(audio) for audio, _ in recordings))
    reference = " ".join(text for _, text in recordings)
    assert wer(reference, " ".join(r.text for r in results)) < WER_REAL, [r.text for r in results]
    for (audio, _), result in zip(recordings, results, strict=True):
        assert_word_timings(result.words, audio.size / ENGINE_SAMPLE_RATE)


@session_loop
async def test_whisper_returns_empty_text_for_silence(speech_asr: WhisperAsr) -> None:
    assert (await speech_asr.transcribe(np.zeros(16000, dtype=np.float32))).text == ""
    assert (await speech_asr.transcribe(np.zeros(0, dtype=np.float32))).text == ""


@session_loop
async def test_transcription_does_not_block_the_event_loop(speech_asr: WhisperAsr) -> None:
    audio = librivox()[0][0]
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    result = await speech_asr.transcribe(audio)
    elapsed = time.perf_counter() - started
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert result.text
    assert len(gaps) >= elapsed / 0.05  # ticks kept coming while Whisper ran
    assert max(gaps) < 0.25


# TTS


def test_text_is_split_into_sentences_but_not_after_abbreviations() -> None:
    assert split_sentences("Hello there. Dr. Smith will see you at 3.30 p.m. today! Okay?") == [
        "Hello there.",
        "Dr. Smith will see you at 3.30 p.m. today!",
        "Okay?",
    ]
    assert split_sentences("  ") == []


@session_loop
async def test_piper_speaks_one_chunk_per_sentence_that_whisper_understands(
    speech_tts: PiperTts, speech_asr: WhisperAsr
) -> None:
    text = "Your table for four is booked for Friday evening. Is there anything else I can help with?"
    assert "piper-joe" in speech_tts.voices()
    chunks = [c async for c in speech_tts.synthesize(text, voice_id="piper-joe")]
    assert [c.text for c in chunks] == split_sentences(text)
    assert all(c.sample_rate == 22050 and c.pcm.dtype == np.int16 and c.pcm.size > 22050 for c in chunks)
    heard = await speech_asr.transcribe(to_16k(pcm16_to_float32(pcm_of(chunks)), 22050))
    assert wer(text, heard.text) < WER_PIPER, heard.text


@session_loop
async def test_unknown_cloud_voice_falls_back_to_the_default_voice(speech_tts: PiperTts) -> None:
    chunks = [c async for c in speech_tts.synthesize("Hello.", voice_id="11labs-Adrian")]
    assert len(chunks) == 1 and chunks[0].pcm.size > 0


@session_loop
async def test_closing_the_iterator_stops_a_long_text_early(speech_tts: PiperTts) -> None:
    long_text = " ".join(f"This is sentence number {n} of a rather long answer." for n in range(1, 13))
    stopped_before = speech_tts.stopped_early
    stream = speech_tts.synthesize(long_text, voice_id="piper-joe")
    first = await anext(stream)
    started = time.perf_counter()
    await stream.aclose()
    assert time.perf_counter() - started < 0.2
    assert first.text.startswith("This is sentence number 1")

    received: list[SynthesisChunk] = []
    got_one = asyncio.Event()

    async def consume() -> None:
        async for chunk in speech_tts.synthesize(long_text, voice_id="piper-joe"):
            received.append(chunk)
            got_one.set()
            await asyncio.sleep(0.05)  # a consumer that plays audio is slower than the worker

    task = asyncio.create_task(consume())
    await got_one.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert 1 <= len(received) < 12
    # Both workers are back in service for the next text.
    results = await asyncio.gather(*(speak_all(speech_tts, "Still here.") for _ in range(2)))
    assert [len(r) for r in results] == [1, 1]
    async with asyncio.timeout(5):  # the workers skipped the rest of both texts (drains end in the background)
        while speech_tts.stopped_early < stopped_before + 2:  # noqa: ASYNC110 - a counter, not an event
            await asyncio.sleep(0.01)


@session_loop
async def test_speed_and_volume_change_the_audio(speech_tts: PiperTts) -> None:
    text = "Let me check that reservation for you right away."

    async def speak(speed: float = 1.0, volume: float = 1.0) -> np.ndarray:
        return pcm_of([c async for c in speech_tts.synthesize(text, voice_id="piper-joe", speed=speed, volume=volume)])

    normal, fast, quiet = await speak(), await speak(speed=1.5), await speak(volume=0.5)
    assert fast.size < 0.85 * normal.size  # measured 0.77: Piper does not scale pauses and edges
    # Piper normalises each sentence to full scale, so the peak shows the volume exactly.
    assert np.max(np.abs(normal.astype(np.int32))) == 32767
    assert abs(int(np.max(np.abs(quiet.astype(np.int32)))) - 16384) <= 1


@session_loop
async def test_a_killed_worker_fails_its_synthesis_and_is_replaced() -> None:
    tts = await PiperTts.start(workers=1)
    try:
        (old_pid,) = tts.worker_pids
        long_text = " ".join(f"Sentence {n} keeps the worker busy for a while." for n in range(10))
        with pytest.raises(TtsWorkerCrashed):
            async for _ in tts.synthesize(long_text, voice_id="piper-joe"):
                os.kill(old_pid, signal.SIGKILL)
        chunks = [c async for c in tts.synthesize("Back again.", voice_id="piper-joe")]
        assert len(chunks) == 1 and chunks[0].pcm.size > 0
        assert tts.worker_pids and old_pid not in tts.worker_pids
    finally:
        await tts.close()
    with pytest.raises(TtsError, match="closed"):
        await anext(tts.synthesize("Too late.", voice_id="piper-joe"))


@session_loop
async def test_load_speech_starts_everything_and_the_main_process_never_imports_piper(tmp_path: Path) -> None:
    speech = await load_speech(Settings(data_dir=tmp_path, tts_workers=1, asr_workers=1))
    try:
        started = time.perf_counter()
        stream = speech.tts.synthesize("Good morning. How are you?", voice_id="piper-joe")
        first = await anext(stream)
        assert time.perf_counter() - started < 3.0 and first.pcm.size > 0
        await stream.aclose()
        assert speech.vad.frame_samples == 512
    finally:
        await speech.close()
    assert not [name for name in sys.modules if name == "piper" or name.startswith("piper.")]


def test_the_encoder_window_follows_the_utterance() -> None:
    assert window_frames(2.8, None) == 3000  # no margin: Whisper's full 30 s
    assert window_frames(2.8, 2.0, 8.0) == 800  # at least the minimum
    assert window_frames(9.1, 2.0, 8.0) == 1200  # 11.1 s rounded up to whole seconds
    assert window_frames(29.5, 2.0, 8.0) == 3000  # never more than 30 s


def test_short_window_results_that_loop_or_say_nothing_are_not_trusted() -> None:
    def said(text: str, ratio: float = 1.2, logprob: float = -0.3) -> bool:
        return plausible(Transcript(text=text), [(ratio, logprob)], 2.8)

    assert said("Go forward 10 meters.")
    assert said("five five")  # a word said twice is speech, not a loop
    assert not said("Go forward 10 meters. Go forward 10 meters.")
    assert not said("")
    assert not said(" ".join(["word"] * 20))  # 20 words in 2.8 s
    assert not said("Go forward 10 meters.", ratio=2.6)
    assert not said("Go forward 10 meters.", logprob=-1.7)


def test_an_implausible_short_window_result_is_redone_with_the_full_window(speech_asr: WhisperAsr) -> None:
    asr = WhisperAsr(workers=2)  # the session's model (loaded once per process and worker count)
    audio = librivox()[1][0]
    windows: list[int] = []
    real_decode = asr._decode

    def decode(samples, duration, prompt, frames, *, greedy):  # type: ignore[no-untyped-def]
        windows.append(frames)
        if frames < 3000:  # the short window "loops"
            return Transcript(text="he was he was he was he was"), [(3.0, -0.2)]
        return real_decode(samples, duration, prompt, frames, greedy=greedy)

    asr._decode = decode  # type: ignore[method-assign]
    try:
        result = asr.transcribe_sync(audio)
    finally:
        asr.close()
    assert windows[0] < 3000 and windows[1:] == [3000]
    assert asr.fallbacks == 1
    assert wer("he was not an ill disposed young man", result.text) < 0.3, result.text


@session_loop
async def test_the_short_window_transcribes_as_well_as_the_full_one(speech_asr: WhisperAsr, tmp_path: Path) -> None:
    full = WhisperAsr(workers=2, window_margin_s=None, beam_size=1)  # the setting before the short window
    try:
        clips = [audio for audio, _ in librivox()] + [flite(text, tmp_path) for text in FLITE_SENTENCES]
        texts = [text for _, text in librivox()] + list(FLITE_SENTENCES)
        short_results = [await speech_asr.transcribe(c) for c in clips]
        full_results = [await full.transcribe(c) for c in clips]
    finally:
        full.close()
    short_wer = np.mean([wer(t, r.text) for t, r in zip(texts, short_results, strict=True)])
    full_wer = np.mean([wer(t, r.text) for t, r in zip(texts, full_results, strict=True)])
    assert short_wer <= full_wer + 0.03, ([r.text for r in short_results], [r.text for r in full_results])
    for clip, result in zip(clips, short_results, strict=True):
        assert_word_timings(result.words, clip.size / ENGINE_SAMPLE_RATE)


def test_a_short_window_is_padded_with_silence_not_zeros() -> None:
    features = np.zeros((1, 80, 800), np.float32)
    features[0, :, :250] = np.linspace(-0.5, 1.5, 80)[:, None]  # 2.5 s of "speech", then faster-whisper's zeros
    pad_with_silence(features)
    assert np.all(features[0, :, 250:] == np.float32(1.5 - 2.0))  # Whisper's floor: 8 (log10) below the maximum
    assert features[0, 0, 0] == np.float32(-0.5)  # the speech is untouched
