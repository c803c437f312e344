"""Silero VAD v6 on onnxruntime, without torch.

The model file ships inside the faster-whisper wheel (`assets/silero_vad_v6.onnx`), so the VAD
costs no extra install. Inputs: `input` (batch, 64 context + 512 samples), `h` and `c` LSTM
state (1, 1, 128); outputs `speech_probs`, `hn`, `cn`. One InferenceSession (1 thread; about
0.3 ms per 32 ms frame) is shared by all calls; each stream keeps its own state.
"""

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from voxline.speech.interfaces import FloatAudio

__all__ = ["SileroVad", "SileroVadStream", "default_silero_model_path"]

FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)


def default_silero_model_path() -> Path:
    """The Silero v6 ONNX file bundled with faster-whisper."""
    from faster_whisper.utils import get_assets_path

    return Path(get_assets_path()) / "silero_vad_v6.onnx"


class SileroVadStream:
    """State of one audio stream: LSTM state plus the last 64 samples the model needs as context."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)

    def probability(self, frame: FloatAudio) -> float:
        """Speech probability of the next 512-sample (32 ms at 16 kHz) frame of this stream."""
        x = np.asarray(frame, dtype=np.float32).reshape(1, -1)
        if x.shape[1] != FRAME_SAMPLES:
            raise ValueError(f"Silero VAD needs frames of {FRAME_SAMPLES} samples, got {x.shape[1]}")
        x = np.concatenate([self._context, x], axis=1)
        self._context = x[:, -CONTEXT_SAMPLES:]
        prob, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        return float(np.asarray(prob).reshape(-1)[0])


class SileroVad:
    """Factory of VAD streams sharing one model; InferenceSession.run is thread-safe."""

    frame_samples: int = FRAME_SAMPLES

    def __init__(self, model_path: str | os.PathLike[str] | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        path = Path(model_path) if model_path is not None else default_silero_model_path()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def new_stream(self) -> SileroVadStream:
        return SileroVadStream(self.session)
