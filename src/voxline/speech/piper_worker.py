"""Piper TTS worker process: `python -m voxline.speech.piper_worker [--preload MODEL CONFIG]...`.

piper-tts is GPL-3.0-or-later, so only this process imports it; the server talks to it over
stdin/stdout. The frame codec at the top of this module has no piper import and is shared
with the client (voxline.speech.piper).

Frames, both directions: 4-byte big-endian length, a UTF-8 JSON header of that length, then
`header["pcm"]` bytes of raw int16 little-endian PCM (0 when absent).
- worker -> server, once loaded: {"ready": true}
- request: {"id", "text", "model", "config", "length_scale", "volume"}
- reply, one per sentence as soon as it is synthesised: {"id", "seq", "sample_rate", "text",
  "final", "pcm"}; a request ends with a frame whose "final" is true, which may instead carry
  "cancelled": true or "error": "...".
- cancel: {"cancel": id}, honoured between sentences.
"""

import json
import os
import queue
import re
import struct
import sys
import threading
from typing import IO, Any

import numpy as np

__all__ = ["decode_header", "encode_frame", "read_frame", "split_sentences"]

_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 1 << 20


def encode_frame(header: dict[str, Any], pcm: bytes = b"") -> bytes:
    """One protocol frame: length-prefixed JSON header, then the PCM it announces."""
    body = json.dumps({**header, "pcm": len(pcm)}, separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body + pcm


def decode_header(prefix: bytes) -> int:
    """Header length from the 4-byte prefix (rejects absurd sizes from a corrupted stream)."""
    (size,) = _LENGTH.unpack(prefix)
    if size > MAX_HEADER_BYTES:
        raise ValueError(f"frame header of {size} bytes: stream out of sync")
    return int(size)


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        part = stream.read(size - len(data))
        if not part:
            return None
        data += part
    return data


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """Blocking read of one frame; None at end of stream."""
    prefix = _read_exactly(stream, _LENGTH.size)
    if prefix is None:
        return None
    body = _read_exactly(stream, decode_header(prefix))
    if body is None:
        return None
    header = json.loads(body)
    pcm = _read_exactly(stream, int(header.get("pcm", 0))) if header.get("pcm") else b""
    if pcm is None:
        return None
    return header, pcm


_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e mt no approx dept est inc ltd co corp jan feb mar apr jun jul aug "
    "sep sept oct nov dec a.m p.m".split()
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")


def split_sentences(text: str) -> list[str]:
    """Cut text after sentence punctuation followed by whitespace, but not after common
    abbreviations ("Dr.") or initials, so each piece is spoken as one chunk."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].split()
        last_word = before[-1].lower() if before else ""
        if match.group().startswith(".") and (last_word in _ABBREVIATIONS or len(last_word) == 1):
            continue
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


class _Worker:
    """Synthesises requests one at a time; a reader thread takes requests and cancels."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._voices: dict[str, Any] = {}
        self._requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._cancelled: set[str] = set()

    def voice(self, model: str, config: str | None) -> Any:
        """A Piper voice with its own 1-thread ORT session (PiperVoice.load would use every core)."""
        if model not in self._voices:
            import onnxruntime as ort
            from piper import PiperVoice
            from piper.config import PiperConfig

            with open(config or f"{model}.json", encoding="utf-8") as f:
                piper_config = PiperConfig.from_dict(json.load(f))
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            self._voices[model] = PiperVoice(config=piper_config, session=session)
        return self._voices[model]

    def send(self, header: dict[str, Any], pcm: bytes = b"") -> None:
        self._out.write(encode_frame(header, pcm))
        self._out.flush()

    def read_input(self, stream: IO[bytes]) -> None:
        """Reader thread: queue requests, mark cancels at once (they must not wait behind work)."""
        while (frame := read_frame(stream)) is not None:
            header, _ = frame
            with self._lock:
                if "cancel" in header:
                    if header["cancel"] in self._pending:
                        self._cancelled.add(header["cancel"])
                    continue
                self._pending.add(header["id"])
            self._requests.put(header)
        self._requests.put(None)

    def is_cancelled(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self._cancelled

    def finish(self, request_id: str) -> None:
        with self._lock:
            self._pending.discard(request_id)
            self._cancelled.discard(request_id)

    def run(self) -> None:
        while (request := self._requests.get()) is not None:
            request_id = request["id"]
            try:
                self.handle(request)
            except Exception as error:  # report, keep serving other requests
                self.send({"id": request_id, "final": True, "error": f"{type(error).__name__}: {error}"})
            finally:
                self.finish(request_id)

    def handle(self, request: dict[str, Any]) -> None:
        from piper.config import SynthesisConfig

        request_id = request["id"]
        voice = self.voice(request["model"], request.get("config"))
        config = SynthesisConfig(length_scale=float(request.get("length_scale", 1.0)))
        volume = float(request.get("volume", 1.0))
        sentences = split_sentences(request.get("text", ""))
        if not sentences:
            self.send({"id": request_id, "seq": 0, "final": True, "sample_rate": voice.config.sample_rate})
            return
        for seq, sentence in enumerate(sentences):
            if self.is_cancelled(request_id):
                self.send({"id": request_id, "final": True, "cancelled": True})
                return
            parts = [chunk.audio_float_array for chunk in voice.synthesize(sentence, syn_config=config)]
            audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
            pcm = (np.clip(audio * volume, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
            header = {
                "id": request_id,
                "seq": seq,
                "sample_rate": voice.config.sample_rate,
                "text": sentence,
                "final": seq == len(sentences) - 1,
            }
            self.send(header, pcm)


def main(argv: list[str]) -> int:
    # The protocol owns the real stdout; anything else printing (libraries, espeak) goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = _Worker(out)
    preload = argv[argv.index("--preload") + 1 :] if "--preload" in argv else []
    for model, config in zip(preload[::2], preload[1::2], strict=False):
        worker.voice(model, config)
    worker.send({"ready": True})
    threading.Thread(target=worker.read_input, args=(sys.stdin.buffer,), daemon=True).start()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
