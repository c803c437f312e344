"""Frame-level VAD decisions turned into speech events with hysteresis, plus the segment's audio.

The detector only looks at probabilities and sample positions (the call's audio clock), so it is
deterministic and cheap; what to do with an event (pause, interrupt, ASR) is the engine's job.
"""

from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np

from voxline.speech.interfaces import ENGINE_SAMPLE_RATE, FloatAudio


class SpeechEvent(Enum):
    ONSET = "onset"
    """First speech frame after silence (not yet known to be speech rather than a click)."""
    CONFIRMED = "confirmed"
    """Speech has lasted `min_speech_s`: a real segment."""
    STOPPED = "stopped"
    """A confirmed segment ended (silence for `speech_stop_s`); `segment` is set."""
    ABORTED = "aborted"
    """An onset that never reached `min_speech_s` (cough, click) faded out."""


@dataclass(frozen=True)
class Segment:
    """One stretch of user speech; times in seconds on the call's audio clock."""

    start_s: float
    end_s: float
    audio: FloatAudio


@dataclass(frozen=True)
class Detection:
    event: SpeechEvent
    at_s: float
    segment: Segment | None = None


class SpeechDetector:
    """Consumes fixed-size VAD frames with their probabilities and emits `Detection`s."""

    def __init__(
        self, frame_samples: int, threshold: float, min_speech_s: float, stop_s: float, pre_roll_s: float
    ) -> None:
        self.frame_s = frame_samples / ENGINE_SAMPLE_RATE
        self._threshold = threshold
        self._min_frames = max(1, round(min_speech_s / self.frame_s))
        self._stop_frames = max(1, round(stop_s / self.frame_s))
        self._pre_roll: deque[FloatAudio] = deque(maxlen=max(0, round(pre_roll_s / self.frame_s)) or 1)
        self._frames_seen = 0
        self._active = False
        self._confirmed = False
        self._speech_frames = 0
        self._silent_run = 0
        self._onset_frame = 0
        self._audio: list[FloatAudio] = []

    @property
    def in_speech(self) -> bool:
        """Between onset and stop/abort."""
        return self._active

    @property
    def position_s(self) -> float:
        """Audio-clock time at the end of the last frame pushed; minus a detection's `at_s` it is
        how late the detection is (hysteresis), so marks can be put where speech really changed."""
        return self._frames_seen * self.frame_s

    @property
    def speech_s(self) -> float:
        """Seconds of speech frames since the current onset (0 when silent)."""
        return self._speech_frames * self.frame_s if self._active else 0.0

    def push(self, frame: FloatAudio, probability: float) -> list[Detection]:
        start_s = self._frames_seen * self.frame_s
        self._frames_seen += 1
        now_s = self._frames_seen * self.frame_s
        speech = probability >= self._threshold
        out: list[Detection] = []
        if not self._active:
            if speech:
                self._active, self._confirmed = True, False
                self._speech_frames, self._silent_run = 1, 0
                self._onset_frame = self._frames_seen - 1 - len(self._pre_roll)
                self._audio = [*self._pre_roll, frame]
                out.append(Detection(SpeechEvent.ONSET, start_s))
                if self._min_frames <= 1:
                    self._confirmed = True
                    out.append(Detection(SpeechEvent.CONFIRMED, now_s))
            self._pre_roll.append(frame)
            return out
        self._audio.append(frame)
        self._pre_roll.append(frame)
        if speech:
            self._speech_frames += 1
            self._silent_run = 0
            if not self._confirmed and self._speech_frames >= self._min_frames:
                self._confirmed = True
                out.append(Detection(SpeechEvent.CONFIRMED, now_s))
            return out
        self._silent_run += 1
        if self._silent_run < self._stop_frames:
            return out
        self._active = False
        end_frame = self._frames_seen - self._silent_run
        if not self._confirmed:
            out.append(Detection(SpeechEvent.ABORTED, end_frame * self.frame_s))
            return out
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
        segment = Segment(max(self._onset_frame, 0) * self.frame_s, end_frame * self.frame_s, audio)
        out.append(Detection(SpeechEvent.STOPPED, segment.end_s, segment))
        return out
