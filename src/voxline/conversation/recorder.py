"""Call recording: the caller and the agent as two aligned channels on the call clock, plus a mono mix.

Everything is placed by call time (seconds since the conversation started), the clock the transcript's
word timings use, so cutting the recording at a word's start/end cuts out that word:

- user channel: sample `k` of the engine's 16 kHz input stream lands at `audio_zero_s + k/16000`
  (the engine passes that as `at_s`); a jump in `at_s` leaves zeros, an earlier `at_s` is summed in.
- agent channel: each output frame lands at the call time it was sent (`PlayedPiece.frame_starts`);
  nothing is written between turns, so the channel is zero there, and a barge-in cut leaves exactly
  the frames that were sent.

Resampling. Agent frames (any output rate) are resampled to the recorder rate with one
`soxr.ResampleStream` per *run*: a run is a stretch of frames whose send times follow on from each
other (up to one frame late, the slack `Playback._play` allows before it counts an underrun and
restarts its pace; up to half a frame early). Within a run the filter state carries across frames,
so frame boundaries are seamless; soxr's stream output is delay-compensated (output sample `j` is
input time `j/out_rate` from the run's start) but bursty, so output is placed by counting samples
from the run's start, never by the frame that happened to release it. A gap (between turns, an
underrun, a pause) ends the run: the stream is flushed (`last=True`) and the next frame starts a new
one at its own `at_s`. Send-time jitter within a run is therefore absorbed (frames stay contiguous)
at the cost of a word timing being off by that jitter (< one frame). Stateless per-frame
`soxr.resample` was rejected: each frame's filter sees a hard edge at both ends, which leaves an
error at every 20 ms boundary: -40 dB (8 kHz in) to -50 dB (24-48 kHz in) relative to a 1 kHz tone,
a 50 Hz buzz under the voice, where the stream stays at the int16 floor (-84 dB).

Storage. Each channel is a raw int16 file in `directory`, written with `os.pwrite` at the sample
offset (holes read back as zeros; the rare overlap is read back and summed with saturation), so
memory stays flat however long the call. Per 20 ms frame the work is a `np.frombuffer` (agent) or
a float→int16 conversion (user), a `resample_chunk` on the agent's own rate (amortised: soxr works
in blocks) and one `pwrite` syscall. Measured (timeit, one core of a shared 2-core machine): agent
frame 5 µs at 16 kHz, 9-15 µs from 8/22.05/24/44.1/48 kHz; user chunk (320 samples) 11 µs, 24 µs
into a 24 kHz recorder; pushing both channels of an hour-long call costs 7 s of CPU in all.

`finish` streams both raw files in blocks into `recording.wav` (mono, user + agent with saturating
addition) and `recording_multi_channel.wav` (channel 0 user, channel 1 agent), then deletes the
raw files; it does file I/O proportional to the call's length, so call it off the event loop
(`await asyncio.to_thread(recorder.finish, duration_s)`; 0.7 s for an hour).
"""

import contextlib
import logging
import os
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

USER_SAMPLE_RATE = 16_000
"""The engine's input rate: `user_audio` chunks are float32 mono at this rate."""
MIXED_NAME = "recording.wav"
MULTI_CHANNEL_NAME = "recording_multi_channel.wav"
_RAW_NAMES = ("user.raw", "agent.raw")
_BLOCK = 1 << 16  # samples per channel per block when writing the WAVs


class Recorder(Protocol):
    """What the engine feeds, on the event loop, once per frame: must be cheap and never raise."""

    def user_audio(self, samples_16k: np.ndarray, at_s: float) -> None:
        """Float32 mono 16 kHz, a contiguous stream; `at_s` is the call time of this chunk's first sample."""
        ...

    def agent_audio(self, pcm16le: bytes, sample_rate: int, at_s: float) -> None:
        """One output frame exactly as sent (mono PCM16LE at `sample_rate`); `at_s` is when it was sent."""
        ...


class NullRecorder:
    """A `Recorder` that keeps nothing."""

    def user_audio(self, samples_16k: np.ndarray, at_s: float) -> None:
        return None

    def agent_audio(self, pcm16le: bytes, sample_rate: int, at_s: float) -> None:
        return None


@dataclass(frozen=True)
class RecordingFiles:
    mixed: Path
    """Mono 16-bit WAV: user + agent, summed with saturation (no wrap-around)."""
    multi_channel: Path
    """2-channel 16-bit WAV: channel 0 = user, channel 1 = agent, on the same clock."""
    duration_s: float
    """Length of both WAVs: the `duration_s` given to `finish`, or longer if audio was sent up to
    the end (the last frame's tail is kept rather than cut)."""


def float_to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1) → int16, rounded and clipped (exact inverse of `pcm16_to_float`)."""
    scaled = np.asarray(samples, dtype=np.float32) * np.float32(32768.0)
    out: np.ndarray = np.clip(np.rint(scaled), -32768, 32767).astype(np.int16)
    return out


class _Run:
    """Frames that follow on from each other in time, through one resampler stream."""

    __slots__ = ("in_count", "in_rate", "origin_s", "out_count", "start", "stream")

    def __init__(self, in_rate: int, out_rate: int, at_s: float) -> None:
        self.in_rate = in_rate
        self.origin_s = at_s
        self.start = round(at_s * out_rate)  # output sample offset of the run's first sample
        self.in_count = 0
        self.out_count = 0
        self.stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16")

    def follows(self, in_rate: int, at_s: float, late_s: float, early_s: float) -> bool:
        """Whether a chunk at `at_s` carries on where this run ends (late by ≤ late_s, early by ≤ early_s)."""
        drift = at_s - (self.origin_s + self.in_count / self.in_rate)
        return in_rate == self.in_rate and -early_s <= drift <= late_s


class _Track:
    """One channel: a raw int16 file written at sample offsets, fed through resampler runs."""

    def __init__(self, path: Path, rate: int, *, late: float, early: float, per_chunk: bool) -> None:
        self.path = path
        self.rate = rate
        self._late, self._early, self._per_chunk = late, early, per_chunk
        """How far a chunk may be late/early against where the run ends and still continue it: in
        chunk durations (`per_chunk`: agent frames, paced with jitter) or in input samples (user)."""
        self._fd: int | None = None
        self._run: _Run | None = None
        self.end = 0
        """High-water mark in samples: the raw file's length; audio at or past it needs no summing."""

    def push(self, pcm: np.ndarray, in_rate: int, at_s: float) -> None:
        n = len(pcm)
        if n == 0:
            return
        unit = (n if self._per_chunk else 1) / in_rate
        run = self._run
        if run is None or not run.follows(in_rate, at_s, self._late * unit, self._early * unit):
            self.end_run()
            run = self._run = _Run(in_rate, self.rate, at_s)
        run.in_count += n
        self._place(run, pcm if run.stream is None else run.stream.resample_chunk(pcm))

    def end_run(self) -> None:
        """Flush the current run's resampler (its held-back tail lands where it belongs)."""
        run, self._run = self._run, None
        if run is not None and run.stream is not None:
            self._place(run, run.stream.resample_chunk(np.zeros(0, np.int16), last=True))

    def drop_run(self) -> None:
        self._run = None

    def _place(self, run: _Run, out: np.ndarray) -> None:
        if len(out):
            self._write(run.start + run.out_count, out)
            run.out_count += len(out)

    def _write(self, offset: int, data: np.ndarray) -> None:
        if offset < 0:
            data = data[-offset:]
            offset = 0
            if not len(data):
                return
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        data = np.ascontiguousarray(data, dtype="<i2")
        if offset < self.end:  # overlaps what is already there (should not happen): sum, saturating
            old = self.read(offset, min(len(data), self.end - offset))
            summed = data.astype(np.int32)
            summed[: len(old)] += old
            data = np.clip(summed, -32768, 32767).astype("<i2")
        os.pwrite(self._fd, data.data, 2 * offset)
        self.end = max(self.end, offset + len(data))

    def read(self, offset: int, n: int) -> np.ndarray:
        """`n` samples from `offset`; zeros where nothing was written."""
        out = np.zeros(n, np.int16)
        if self._fd is not None and n > 0 and offset < self.end:
            raw = os.pread(self._fd, 2 * n, 2 * offset)
            got = np.frombuffer(raw, "<i2", count=len(raw) // 2)
            out[: len(got)] = got
        return out

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class CallRecorder:
    """Records one call to `directory` (created on first use); see the module docstring.

    `user_audio` and `agent_audio` run on the event loop; `finish` and `discard` may run in a
    worker thread (a lock guards the shared state, and is held only for per-frame-sized work).
    """

    def __init__(self, directory: Path, sample_rate: int = 16_000) -> None:
        self.directory = Path(directory)
        self.sample_rate = sample_rate
        # user: placed exactly by at_s (half a sample absorbs float rounding); agent: a frame up to
        # one frame late still follows on (Playback keeps its pace until then), up to half a frame early
        self._user = _Track(self.directory / _RAW_NAMES[0], sample_rate, late=0.5, early=0.5, per_chunk=False)
        self._agent = _Track(self.directory / _RAW_NAMES[1], sample_rate, late=1.0, early=0.5, per_chunk=True)
        self._lock = threading.Lock()  # per-frame state
        self._finish_lock = threading.Lock()  # finish / discard
        self._accepting = True
        self._files: RecordingFiles | None = None
        self._discarded = False
        self._made_directory = not self.directory.exists()

    # -- Recorder -------------------------------------------------------------------------------
    def user_audio(self, samples_16k: np.ndarray, at_s: float) -> None:
        if self._accepting and len(samples_16k):
            self._push(self._user, float_to_pcm16(samples_16k), USER_SAMPLE_RATE, at_s)

    def agent_audio(self, pcm16le: bytes, sample_rate: int, at_s: float) -> None:
        if self._accepting and len(pcm16le) >= 2:
            pcm = np.frombuffer(pcm16le, "<i2", count=len(pcm16le) // 2).astype(np.int16, copy=False)
            self._push(self._agent, pcm, sample_rate, at_s)

    def _push(self, track: _Track, pcm: np.ndarray, rate: int, at_s: float) -> None:
        with self._lock:
            if not self._accepting:
                return
            try:
                track.push(pcm, rate, at_s)
            except Exception:  # disk full, bad directory…: the call goes on, the recording stops here
                log.exception("call recording failed; keeping what was written so far")
                self._accepting = False

    # -- end of call ----------------------------------------------------------------------------
    def finish(self, duration_s: float) -> RecordingFiles:
        """Write both WAVs (padded with silence to `duration_s`), delete the raw files and return
        the paths. Idempotent: later calls return the first result. Raises after `discard`."""
        with self._finish_lock:
            if self._discarded:
                raise RuntimeError("recording was discarded")
            if self._files is not None:
                return self._files
            with self._lock:
                self._accepting = False
                for track in (self._user, self._agent):
                    track.end_run()
            rate = self.sample_rate
            n = max(round(max(duration_s, 0.0) * rate), self._user.end, self._agent.end)
            mixed, multi = self.directory / MIXED_NAME, self.directory / MULTI_CHANNEL_NAME
            self.directory.mkdir(parents=True, exist_ok=True)
            self._write_wavs(mixed, multi, n)
            self._remove_raw()
            self._files = RecordingFiles(mixed=mixed, multi_channel=multi, duration_s=n / rate)
            return self._files

    def discard(self) -> None:
        """Stop recording and delete everything written (raw files and WAVs); idempotent."""
        with self._finish_lock:
            with self._lock:
                self._accepting = False
                self._discarded = True
                for track in (self._user, self._agent):
                    track.drop_run()
            self._remove_raw()
            for name in (MIXED_NAME, MULTI_CHANNEL_NAME):
                for path in (self.directory / name, self.directory / (name + ".tmp")):
                    path.unlink(missing_ok=True)
            self._files = None
            if self._made_directory:
                with contextlib.suppress(OSError):
                    self.directory.rmdir()  # only if empty: never someone else's files

    def _remove_raw(self) -> None:
        for track in (self._user, self._agent):
            track.close()
            track.path.unlink(missing_ok=True)

    def _write_wavs(self, mixed: Path, multi: Path, n: int) -> None:
        mixed_tmp, multi_tmp = mixed.with_name(mixed.name + ".tmp"), multi.with_name(multi.name + ".tmp")
        with wave.open(str(mixed_tmp), "wb") as mono, wave.open(str(multi_tmp), "wb") as stereo:
            for w, channels in ((mono, 1), (stereo, 2)):
                w.setnchannels(channels)
                w.setsampwidth(2)
                w.setframerate(self.sample_rate)
                w.setnframes(n)
            for pos in range(0, n, _BLOCK):
                k = min(_BLOCK, n - pos)
                user, agent = self._user.read(pos, k), self._agent.read(pos, k)
                mix = np.clip(user.astype(np.int32) + agent, -32768, 32767).astype("<i2")
                mono.writeframesraw(mix.tobytes())
                both = np.empty((k, 2), "<i2")
                both[:, 0], both[:, 1] = user, agent
                stereo.writeframesraw(both.tobytes())
        os.replace(mixed_tmp, mixed)
        os.replace(multi_tmp, multi)
