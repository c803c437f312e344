"""CallRecorder: two channels on the call clock (user = engine input stream, agent = frames as sent)
and a saturating mono mix, written incrementally and finished into WAVs."""

import shutil
import subprocess
import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest
import soxr  # type: ignore[import-untyped]

from voxline.conversation.audio import InputResampler
from voxline.conversation.recorder import (
    MIXED_NAME,
    MULTI_CHANNEL_NAME,
    CallRecorder,
    RecordingFiles,
    float_to_pcm16,
)

SR = 16_000
FRAME_S = 0.02
RATES = [8000, 16000, 24000, 44100, 48000]


# -- helpers ------------------------------------------------------------------------------------
def read_wav(path: Path) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """((channels, sample width, rate, frames), samples as (frames, channels) int16)."""
    with wave.open(str(path), "rb") as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    return params, data


def channels(files: RecordingFiles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, agent, mix) as int16 arrays."""
    _, multi = read_wav(files.multi_channel)
    _, mixed = read_wav(files.mixed)
    return multi[:, 0], multi[:, 1], mixed[:, 0]


def noise_burst(seconds: float, seed: int, cutoff_hz: float = 3000.0, amplitude: float = 0.3) -> np.ndarray:
    """Band-limited noise at 16 kHz (float64 in [-1, 1]): a signal whose position correlation pins down."""
    n = round(seconds * SR)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / SR) > cutoff_hz] = 0
    x = np.fft.irfft(spectrum, n)
    return amplitude * x / np.max(np.abs(x))


def to_rate(x16k: np.ndarray, rate: int) -> np.ndarray:
    """A 16 kHz float signal as int16 PCM at `rate` (what a caller or TTS would produce)."""
    y = x16k if rate == SR else soxr.resample(x16k, SR, rate)
    return float_to_pcm16(np.asarray(y, np.float32))


def frames(pcm: np.ndarray, rate: int) -> list[bytes]:
    """20 ms frames as `Playback._play` cuts them (the last one padded with zeros)."""
    n = round(rate * FRAME_S)
    pad = (-len(pcm)) % n
    pcm = np.concatenate([pcm, np.zeros(pad, np.int16)])
    return [pcm[i : i + n].astype("<i2").tobytes() for i in range(0, len(pcm), n)]


def play_agent(
    rec: CallRecorder, pcm: np.ndarray, rate: int, start_s: float, *, jitter_s: np.ndarray | None = None
) -> list[float]:
    """Send `pcm` as paced frames from call time `start_s`; returns the send times used."""
    sent: list[float] = []
    for i, frame in enumerate(frames(pcm, rate)):
        at = start_s + i * FRAME_S + (0.0 if jitter_s is None else float(jitter_s[i % len(jitter_s)]))
        rec.agent_audio(frame, rate, at)
        sent.append(at)
    return sent


def feed_user(rec: CallRecorder, pcm: np.ndarray, rate: int, zero_s: float) -> int:
    """Mirror the engine's input lane: 20 ms caller frames → InputResampler → user_audio at
    audio_zero_s + samples_so_far/16000. Returns the number of 16 kHz samples produced."""
    resampler = InputResampler(rate, SR)
    n = round(rate * FRAME_S)
    count = 0
    for i in range(0, len(pcm), n):
        chunk = resampler.push(pcm[i : i + n].astype("<i2").tobytes())
        if len(chunk):
            rec.user_audio(chunk, zero_s + count / SR)
        count += len(chunk)
    return count


def lag_of(recorded: np.ndarray, reference: np.ndarray, expected: int, search: int = 1600) -> tuple[int, float]:
    """Offset in `recorded` where `reference` fits best within ±search of `expected`, and the
    normalised correlation there."""
    lo = max(expected - search, 0)
    window = recorded[lo : expected + search + len(reference)].astype(np.float64)
    ref = reference.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(window) + len(ref))))
    corr = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(ref, size)), size)[: len(window) - len(ref) + 1]
    best = int(np.argmax(corr))
    seg = window[best : best + len(ref)]
    norm = float(np.dot(seg, ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12))
    return lo + best, norm


def active_span(x: np.ndarray, threshold: int = 300) -> tuple[float, float]:
    """Call times (s) of the first and last sample louder than `threshold`."""
    idx = np.nonzero(np.abs(x.astype(np.int32)) > threshold)[0]
    assert len(idx), "no energy at all"
    return idx[0] / SR, (idx[-1] + 1) / SR


def frame_rms(x: np.ndarray, start_s: float, end_s: float) -> float:
    seg = x[round(start_s * SR) : round(end_s * SR)].astype(np.float64)
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


def sine_error_db(recorded: np.ndarray, start_s: float, seconds: float, freq: float, amplitude: float) -> float:
    """RMS of (recorded - ideal sine that started at `start_s`) relative to the sine, over the
    steady part (10 ms in from both ends), in dB."""
    a, b = round((start_s + 0.01) * SR), round((start_s + seconds - 0.01) * SR)
    t = np.arange(a, b) / SR - start_s
    ideal = amplitude * 32768 * np.sin(2 * np.pi * freq * t)
    err = recorded[a:b].astype(np.float64) - ideal
    return float(20 * np.log10(np.sqrt(np.mean(err**2)) / np.sqrt(np.mean(ideal**2))))


def sine_pcm(rate: int, seconds: float, freq: float = 1000.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return float_to_pcm16((amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32))


# -- alignment ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", RATES)
def test_both_channels_line_up_with_the_call_clock(tmp_path: Path, rate: int) -> None:
    """The caller's burst (input-stream time 0.40 s, audio_zero_s 0.25) and the agent's burst
    (sent from 1.50 s) land at those call times, sample-exact, each on its own channel."""
    rec = CallRecorder(tmp_path / "rec")
    user_ref, agent_ref = noise_burst(0.6, seed=1), noise_burst(0.5, seed=2)
    caller_stream = np.concatenate([np.zeros(round(0.4 * SR)), user_ref, np.zeros(round(0.5 * SR))])
    zero_s = 0.25
    feed_user(rec, to_rate(caller_stream, rate), rate, zero_s)
    play_agent(rec, to_rate(agent_ref, rate), rate, 1.5)
    files = rec.finish(2.5)
    user, agent, _ = channels(files)
    assert len(user) == len(agent) == round(2.5 * SR)

    user_at, user_corr = lag_of(user, float_to_pcm16(user_ref.astype(np.float32)), round((zero_s + 0.4) * SR))
    agent_at, agent_corr = lag_of(agent, float_to_pcm16(agent_ref.astype(np.float32)), round(1.5 * SR))
    assert abs(user_at - round(0.65 * SR)) <= 1, user_at / SR
    assert abs(agent_at - round(1.5 * SR)) <= 1, agent_at / SR
    assert user_corr > 0.99 and agent_corr > 0.99

    # energy exactly where expected (to within one frame), and only on its own channel
    for x, (start, end) in ((user, (0.65, 1.25)), (agent, (1.5, 2.0))):
        got_start, got_end = active_span(x)
        assert abs(got_start - start) <= FRAME_S and abs(got_end - end) <= FRAME_S, (got_start, got_end)
    assert frame_rms(user, 1.27, 2.5) < 5 and frame_rms(agent, 0.0, 1.48) < 5
    assert frame_rms(agent, 2.02, 2.5) == 0.0  # nothing sent after the burst: exact silence


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
def test_real_speech_cut_at_its_send_time(tmp_path: Path) -> None:
    """Speech synthesised by flite, played as 22.05 kHz frames from 0.83 s, is found in the agent
    channel at exactly that time, and cutting the recording there gives back the speech."""
    wav = tmp_path / "speech.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", "Recording lines up with the words.", "-o", str(wav)], check=True)
    (_, _, flite_rate, _), speech = read_wav(wav)
    speech = speech[:, 0]
    tts = np.asarray(soxr.resample(speech, flite_rate, 22050), np.int16)  # a TTS at another rate
    rec = CallRecorder(tmp_path / "rec")
    play_agent(rec, tts, 22050, 0.83)
    _, agent, _ = channels(rec.finish(0.83 + len(speech) / flite_rate + 0.5))
    reference = np.asarray(soxr.resample(speech, flite_rate, SR), np.int16)
    at, corr = lag_of(agent, reference, round(0.83 * SR))
    assert abs(at - round(0.83 * SR)) <= 1 and corr > 0.98
    cut = agent[at : at + len(reference)].astype(np.float64)
    assert np.sqrt(np.mean((cut - reference) ** 2)) < 0.02 * np.sqrt(np.mean(reference.astype(np.float64) ** 2))


# -- agent frames: gaps, barge-in, jitter, overlap --------------------------------------------
@pytest.mark.parametrize("rate", [16000, 24000])
def test_only_what_was_sent_is_recorded(tmp_path: Path, rate: int) -> None:
    """Two turns with a gap, the second cut by a barge-in after 12 frames: the agent channel is
    exactly zero outside the sent frames and the cut turn stops where the sending stopped."""
    rec = CallRecorder(tmp_path / "rec")
    turn = sine_pcm(rate, 0.5, 700.0)
    play_agent(rec, turn, rate, 0.5)  # 0.50 to 1.00
    cut = frames(sine_pcm(rate, 1.0, 900.0), rate)[:12]  # barge-in: the rest was never sent
    for i, frame in enumerate(cut):
        rec.agent_audio(frame, rate, 2.0 + i * FRAME_S)  # 2.00 to 2.24
    _, agent, _ = channels(rec.finish(3.0))
    for a, b in ((0.0, 0.5), (1.0, 2.0), (2.24, 3.0)):
        assert not agent[round(a * SR) : round(b * SR)].any(), (a, b)
    for a, b in ((0.5, 1.0), (2.0, 2.24)):
        assert frame_rms(agent, a + 0.005, b - 0.005) > 0.5 * 0.5 * 32768 / np.sqrt(2), (a, b)
    start, end = active_span(agent[round(1.5 * SR) :])
    assert abs(start - 0.5) <= 0.002 and abs(end - 0.74) <= 0.002


def test_send_jitter_keeps_frames_contiguous_and_gaps_stay_gaps(tmp_path: Path) -> None:
    """Frames sent a few ms late (event-loop jitter) stay seamless and on time within the jitter;
    an underrun of 100 ms (the pace restarts) leaves 100 ms of silence at the right place."""
    rate = 24000
    rec = CallRecorder(tmp_path / "rec")
    jitter = np.random.default_rng(5).uniform(0.0, 0.008, 64)
    jitter[0] = 0.0
    pcm = sine_pcm(rate, 1.0, 440.0)
    first, second = pcm[: rate // 2], pcm[rate // 2 :]
    play_agent(rec, first, rate, 1.0, jitter_s=jitter)  # 1.0 to 1.5
    play_agent(rec, second, rate, 1.6)  # underrun: 1.6 to 2.1
    _, agent, _ = channels(rec.finish(2.5))
    run = agent[round(1.0 * SR) : round(1.5 * SR)].astype(np.int32)
    assert sine_error_db(agent, 1.0, 0.5, 440.0, 0.5) < -60  # contiguous: still the exact sine
    assert np.max(np.abs(np.diff(run))) <= 2 * np.pi * 440 / SR * 0.5 * 32768 * 1.05
    assert not agent[round(1.5 * SR) : round(1.6 * SR)].any()
    assert active_span(agent[round(1.55 * SR) :])[0] == pytest.approx(0.05, abs=0.002)


def test_overlapping_agent_frames_are_summed(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path / "rec")
    a = np.full(320, 1000, np.int16)
    b = np.full(320, 30000, np.int16)
    rec.agent_audio(a.tobytes(), SR, 1.0)
    rec.agent_audio(a.tobytes(), SR, 1.0)  # same time again: summed
    rec.agent_audio(b.tobytes(), SR, 1.005)  # 15 ms early for its turn: overlaps, 2000 + 30000
    rec.agent_audio(b.tobytes(), SR, 1.005)  # again: 62000 saturates rather than wrapping
    _, agent, _ = channels(rec.finish(1.5))
    i = round(1.0 * SR)
    assert (agent[i : i + 80] == 2000).all()
    assert (agent[i + 80 : i + 400] == 32767).all()
    assert not agent[i + 400 :].any() and not agent[:i].any()


# -- user channel -------------------------------------------------------------------------------
def test_user_stream_starting_late_is_sample_exact(tmp_path: Path) -> None:
    """audio_zero_s = 0.7: sample k of the 16 kHz stream is at 0.7 + k/16000, bit for bit."""
    rec = CallRecorder(tmp_path / "rec")
    pcm = sine_pcm(SR, 1.0, 330.0)
    feed_user(rec, pcm, SR, 0.7)
    user, agent, _ = channels(rec.finish(2.0))
    i = round(0.7 * SR)
    assert not user[:i].any()
    assert np.array_equal(user[i : i + len(pcm)], pcm)
    assert not user[i + len(pcm) :].any() and not agent.any()


def test_user_gap_and_out_of_order_chunks_are_placed_by_time(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path / "rec")
    a, b, c = (float_to_pcm16(np.full(800, v, np.float32)) for v in (0.1, 0.2, 0.3))
    rec.user_audio(a.astype(np.float32) / 32768, 1.0)
    rec.user_audio(c.astype(np.float32) / 32768, 2.0)  # the stream paused: a gap before c…
    rec.user_audio(b.astype(np.float32) / 32768, 1.5)  # …and b arrives late, out of order
    user, _, _ = channels(rec.finish(3.0))
    expected = np.zeros(3 * SR, np.int16)
    for chunk, at in ((a, 1.0), (b, 1.5), (c, 2.0)):
        expected[round(at * SR) : round(at * SR) + 800] = chunk
    assert np.array_equal(user, expected)


def test_recorder_rate_other_than_16k_resamples_both_channels(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path / "rec", sample_rate=24000)
    user_ref, agent_ref = noise_burst(0.4, seed=3), noise_burst(0.4, seed=4)
    feed_user(rec, to_rate(np.concatenate([np.zeros(SR // 5), user_ref]), SR), SR, 0.3)
    play_agent(rec, to_rate(agent_ref, 48000), 48000, 1.1)
    files = rec.finish(2.0)
    (nch, width, rate, n), multi = read_wav(files.multi_channel)
    assert (nch, width, rate, n) == (2, 2, 24000, 48000)
    for x, ref, at in ((multi[:, 0], user_ref, 0.5), (multi[:, 1], agent_ref, 1.1)):
        ref24 = float_to_pcm16(np.asarray(soxr.resample(ref, SR, 24000), np.float32))
        got, corr = lag_of(x, ref24, round(at * 24000))
        assert abs(got - round(at * 24000)) <= 1 and corr > 0.99


# -- seamless frames ----------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [8000, 22050, 24000, 44100, 48000])
def test_frame_boundaries_leave_no_clicks(tmp_path: Path, rate: int) -> None:
    """A continuous 1 kHz sine sent as 20 ms frames comes out as the same sine at 16 kHz: error
    below -60 dB and no sample-to-sample jump beyond the sine's own slope. Per-frame stateless
    resampling (the design not taken) fails the same check, so the check can fail."""
    rec = CallRecorder(tmp_path / "rec")
    pcm = sine_pcm(rate, 1.0)
    play_agent(rec, pcm, rate, 0.5)
    _, agent, _ = channels(rec.finish(2.0))
    assert sine_error_db(agent, 0.5, 1.0, 1000.0, 0.5) < -60
    steady = agent[round(0.51 * SR) : round(1.49 * SR)].astype(np.int32)
    assert np.max(np.abs(np.diff(steady))) <= 2 * np.pi * 1000 / SR * 0.5 * 32768 * 1.01

    stateless = np.concatenate([soxr.resample(np.frombuffer(f, "<i2"), rate, SR) for f in frames(pcm, rate)]).astype(
        np.int16
    )
    reference = np.zeros_like(agent)
    reference[round(0.5 * SR) : round(0.5 * SR) + len(stateless)] = stateless[: len(reference) - round(0.5 * SR)]
    assert sine_error_db(reference, 0.5, 1.0, 1000.0, 0.5) > -60


# -- mix and files ------------------------------------------------------------------------------
def test_mix_is_the_clipped_sum(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path / "rec")
    loud_user = sine_pcm(SR, 1.0, 200.0, amplitude=0.9)
    loud_agent = sine_pcm(SR, 0.6, 200.0, amplitude=0.9)  # in phase with the user from 0.4 s on
    feed_user(rec, loud_user, SR, 0.0)
    play_agent(rec, loud_agent, SR, 0.2)
    user, agent, mix = channels(rec.finish(1.2))
    expected = np.clip(user.astype(np.int32) + agent.astype(np.int32), -32768, 32767)
    assert np.array_equal(mix.astype(np.int32), expected)
    assert (mix == 32767).sum() > 100 and (mix == -32768).sum() > 100  # it did clip…
    both_positive = (user > 0) & (agent > 0)
    assert (mix[both_positive] > 0).all()  # …without wrapping around


@pytest.mark.parametrize("rate", [16000, 24000])
def test_wav_headers(tmp_path: Path, rate: int) -> None:
    rec = CallRecorder(tmp_path / "rec", sample_rate=rate)
    play_agent(rec, sine_pcm(24000, 0.3), 24000, 0.1)
    files = rec.finish(2.5)
    assert files.mixed.name == MIXED_NAME and files.multi_channel.name == MULTI_CHANNEL_NAME
    assert files.duration_s == 2.5
    assert read_wav(files.mixed)[0] == (1, 2, rate, round(2.5 * rate))
    assert read_wav(files.multi_channel)[0] == (2, 2, rate, round(2.5 * rate))
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == sorted([MIXED_NAME, MULTI_CHANNEL_NAME])


def test_audio_sent_up_to_the_end_is_kept(tmp_path: Path) -> None:
    """The last frame, sent 5 ms before the end, is not cut: the files run to its end."""
    rec = CallRecorder(tmp_path / "rec")
    rec.agent_audio(np.full(320, 500, np.int16).tobytes(), SR, 0.995)
    files = rec.finish(1.0)
    _, agent, _ = channels(files)
    assert len(agent) == round(1.015 * SR) and files.duration_s == pytest.approx(1.015)
    assert (agent[round(0.995 * SR) :] == 500).all()


def test_finish_twice_returns_the_same_files(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path / "rec")
    feed_user(rec, sine_pcm(SR, 0.5), SR, 0.1)
    first = rec.finish(1.0)
    content = (first.mixed.read_bytes(), first.multi_channel.read_bytes())
    rec.agent_audio(np.full(320, 9000, np.int16).tobytes(), SR, 0.5)  # after the end: ignored
    second = rec.finish(5.0)
    assert second == first and second.duration_s == 1.0
    assert (first.mixed.read_bytes(), first.multi_channel.read_bytes()) == content


def test_empty_recording_gives_silent_wavs_of_the_duration(tmp_path: Path) -> None:
    files = CallRecorder(tmp_path / "a").finish(3.0)
    for path, nch in ((files.mixed, 1), (files.multi_channel, 2)):
        params, data = read_wav(path)
        assert params == (nch, 2, SR, 3 * SR) and not data.any()
    zero = CallRecorder(tmp_path / "b").finish(0.0)
    assert read_wav(zero.mixed)[0] == (1, 2, SR, 0) and read_wav(zero.multi_channel)[0] == (2, 2, SR, 0)


def test_discard_removes_everything_written(tmp_path: Path) -> None:
    # before finish: the raw files go, and the directory the recorder made
    rec = CallRecorder(tmp_path / "a")
    play_agent(rec, sine_pcm(SR, 0.2), SR, 0.0)
    feed_user(rec, sine_pcm(SR, 0.2), SR, 0.0)
    assert len(list((tmp_path / "a").iterdir())) == 2
    rec.discard()
    assert not (tmp_path / "a").exists()
    rec.agent_audio(np.full(320, 1, np.int16).tobytes(), SR, 0.5)  # ignored, writes nothing
    assert not (tmp_path / "a").exists()
    with pytest.raises(RuntimeError):
        rec.finish(1.0)
    # after finish, in a directory that holds other things: only the recording goes
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "keep.txt").write_text("x")
    rec = CallRecorder(shared)
    play_agent(rec, sine_pcm(SR, 0.2), SR, 0.0)
    files = rec.finish(1.0)
    assert files.mixed.exists() and files.multi_channel.exists()
    rec.discard()
    rec.discard()
    assert [p.name for p in shared.iterdir()] == ["keep.txt"]


def test_write_failure_does_not_reach_the_call(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    rec = CallRecorder(blocker / "rec")
    rec.agent_audio(np.full(320, 1, np.int16).tobytes(), SR, 0.0)  # mkdir fails: logged, not raised
    rec.user_audio(np.zeros(320, np.float32), 0.0)
    with pytest.raises(OSError):
        rec.finish(1.0)


def test_memory_stays_flat_over_a_long_call(tmp_path: Path) -> None:
    """Two minutes of both channels (7.7 MB of samples) never sit in memory."""
    rec = CallRecorder(tmp_path / "rec")
    agent_frame = sine_pcm(24000, FRAME_S).tobytes()
    user_chunk = np.full(320, 0.1, np.float32)
    tracemalloc.start()
    try:
        for i in range(6000):
            rec.agent_audio(agent_frame, 24000, i * FRAME_S)
            rec.user_audio(user_chunk, i * FRAME_S)
        _, push_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        files = rec.finish(120.0)
        _, finish_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert push_peak < 1_000_000 and finish_peak < 3_000_000, (push_peak, finish_peak)
    assert read_wav(files.multi_channel)[0] == (2, 2, SR, 120 * SR)
