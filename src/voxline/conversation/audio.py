"""Sample-format and sample-rate conversion at the engine's edges (soxr, streaming where it matters)."""

import numpy as np
import soxr  # type: ignore[import-untyped]

from voxline.speech.interfaces import FloatAudio, PcmAudio


def pcm16_to_float(data: bytes) -> FloatAudio:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class InputResampler:
    """Client PCM16LE at any rate → float32 at the engine rate; keeps filter state across frames
    so frame boundaries leave no clicks, and carries an odd trailing byte to the next frame."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
        self._carry = b""

    def push(self, data: bytes) -> FloatAudio:
        data = self._carry + data
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        samples = pcm16_to_float(data[:usable])
        if self._stream is None:
            return samples
        out: FloatAudio = np.asarray(self._stream.resample_chunk(samples), dtype=np.float32)
        return out


def resample_pcm(pcm: PcmAudio, in_rate: int, out_rate: int) -> PcmAudio:
    """One self-contained TTS chunk to the output rate (each chunk is whole audio, no state needed)."""
    if in_rate == out_rate:
        return pcm.astype(np.int16, copy=False)
    out: PcmAudio = np.asarray(soxr.resample(pcm.astype(np.int16, copy=False), in_rate, out_rate), dtype=np.int16)
    return out
