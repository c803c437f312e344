"""Audio plumbing shared by the speech providers: PCM16 <-> float32, streaming resampling, levels, µ-law.

Clients send PCM16 little-endian (or µ-law from web client 1.x and telephony); the models want
float32 at 16 kHz; Piper speaks int16 at 22,050 Hz. Everything here is numpy only, so it is cheap
enough to run on the event loop for 20-40 ms frames.
"""

import math

import numpy as np
import numpy.typing as npt
import soxr

from voxline.speech.interfaces import ENGINE_SAMPLE_RATE, FloatAudio, PcmAudio

__all__ = [
    "StreamResampler",
    "dbfs",
    "float32_to_pcm16",
    "float32_to_pcm16le",
    "mulaw_decode",
    "mulaw_encode",
    "pcm16_to_float32",
    "pcm16le_to_float32",
    "rms",
]

_PCM16LE = np.dtype("<i2")
DBFS_FLOOR = -120.0
"""Level reported for digital silence, so callers never see -inf."""


def pcm16le_to_float32(data: bytes | bytearray | memoryview) -> FloatAudio:
    """PCM16 little-endian bytes -> float32 in [-1, 1) (the wire format of web and phone clients)."""
    if len(data) % 2:
        raise ValueError(f"PCM16 data has an odd number of bytes ({len(data)})")
    return pcm16_to_float32(np.frombuffer(data, dtype=_PCM16LE))


def pcm16_to_float32(samples: npt.NDArray[np.int16]) -> FloatAudio:
    """int16 samples -> float32 in [-1, 1)."""
    return (samples.astype(np.float32) / 32768.0).astype(np.float32, copy=False)


def float32_to_pcm16(audio: npt.NDArray[np.floating]) -> PcmAudio:
    """float samples -> int16, clipping instead of wrapping around on overload."""
    scaled = np.clip(np.asarray(audio, dtype=np.float32) * 32768.0, -32768.0, 32767.0)
    return np.round(scaled).astype(np.int16)


def float32_to_pcm16le(audio: npt.NDArray[np.floating]) -> bytes:
    """float samples -> PCM16 little-endian bytes for the wire."""
    return float32_to_pcm16(audio).astype(_PCM16LE, copy=False).tobytes()


def rms(audio: npt.NDArray[np.floating] | npt.NDArray[np.integer]) -> float:
    """Root mean square on the float scale (int16 input is scaled to [-1, 1)); 0 for empty input."""
    x = np.asarray(audio)
    if x.size == 0:
        return 0.0
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def dbfs(audio: npt.NDArray[np.floating] | npt.NDArray[np.integer]) -> float:
    """RMS level in dB relative to full scale, floored at DBFS_FLOOR (digital silence)."""
    level = rms(audio)
    return DBFS_FLOOR if level <= 0.0 else max(DBFS_FLOOR, 20.0 * math.log10(level))


def _mulaw_table() -> npt.NDArray[np.int16]:
    """The 256 G.711 µ-law code words decoded to 16-bit linear samples."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


_MULAW_DECODE = _mulaw_table()


def mulaw_decode(data: bytes | bytearray | memoryview) -> FloatAudio:
    """G.711 µ-law bytes -> float32 (web client 1.x and telephony may send µ-law)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return pcm16_to_float32(_MULAW_DECODE[codes])


def mulaw_encode(audio: npt.NDArray[np.floating]) -> bytes:
    """float samples -> G.711 µ-law bytes (for µ-law clients and round-trip tests)."""
    pcm = float32_to_pcm16(audio).astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


class StreamResampler:
    """Resamples one continuous stream chunk by chunk without clicks at chunk borders.

    Wraps soxr.ResampleStream, which keeps filter state between calls; use one per stream
    (client audio -> 16 kHz for VAD/ASR, or Piper's 22,050 Hz -> the client's output rate).
    Input and output are mono arrays of `dtype` (float32 or int16).
    """

    def __init__(
        self,
        in_rate: int,
        out_rate: int = ENGINE_SAMPLE_RATE,
        *,
        dtype: str = "float32",
        quality: str = "HQ",
    ) -> None:
        if dtype not in ("float32", "int16"):
            raise ValueError(f"unsupported dtype {dtype!r}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.dtype = np.dtype(dtype)
        self._quality = quality
        self._stream: soxr.ResampleStream | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the filter state (start of a new, unrelated stream)."""
        self._stream = (
            None
            if self.in_rate == self.out_rate
            else soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype=self.dtype.name, quality=self._quality)
        )

    def process(self, chunk: npt.NDArray[np.generic], *, last: bool = False) -> npt.NDArray[np.generic]:
        """Resample the next chunk; `last=True` flushes the filter's tail (then call reset() to reuse)."""
        x = np.ascontiguousarray(chunk, dtype=self.dtype)
        if x.ndim != 1:
            raise ValueError("StreamResampler takes mono (1-D) audio")
        if self._stream is None:
            return x.copy()
        return self._stream.resample_chunk(x, last=last)

    def flush(self) -> npt.NDArray[np.generic]:
        """The samples still held in the filter at the end of the stream."""
        return self.process(np.zeros(0, dtype=self.dtype), last=True)
