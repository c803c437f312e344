"""Voice-latency benchmark (issue 3): simulated callers talking to a real `voxline serve`.

What it does, in one run:

* starts its own Voxline server subprocess (fresh temp data dir, free loopback port,
  VOXLINE_LOG_LEVEL=warning, VOXLINE_MAX_CONCURRENT_CALLS=64) and reads the first API key from its
  output, like bench/api.py;
* starts an instant LLM server of its own (a `websockets` server on loopback speaking the LLM
  WebSocket protocol): `config` with auto_reconnect false, an empty begin message (the user speaks
  first), and for every `response_required` at once one chunk "Sure, I can help you with that. What
  is your booking reference?" with content_complete true;
* creates one custom-LLM agent on it (voice piper-joe);
* or, with `--engine retell-llm`, the built-in LLM instead: the bench serves an instant
  OpenAI-compatible endpoint on loopback (HTTP/1.1, keep-alive; every streamed
  `POST /v1/chat/completions` is answered at once with the same reply as SSE: a role delta, four
  content deltas, finish_reason "stop", `data: [DONE]`), starts the server with
  VOXLINE_LLM_BASE_URL pointing at it, and creates a Retell LLM (empty begin message, the user
  speaks first, a one-line prompt carrying `{{call_id}}` so requests can be told apart per call)
  and a piper-joe agent on it. Everything else is the same;
* for each N of `--calls` (a sweep), runs N simulated callers at once. Each creates a v3 web call,
  joins `/web-call-websocket` at 16 kHz and streams 20 ms PCM16 frames on an absolute real-time
  schedule (silence when not speaking), then takes `--turns` turns: it speaks an utterance (real
  recordings from pocketsphinx-testdata, resampled to 16 kHz, and sentences synthesised by
  `flite -voice slt`), waits for the agent's reply to finish (`agent_stop_talking`), stays silent
  `--pause` seconds, and finally hangs up. Callers start `--stagger` seconds apart in total.

Per turn (same method as the Pipecat peer, /work/shared/bench/pipecat-peer.md):

* end of speech = end of the last Silero speech segment of the clip (faster_whisper.vad, no
  padding), mapped to the monotonic send time of the 20 ms frame that carries it;
* latency = first received agent frame with RMS >= 300 after that, minus the end of speech;
* gaps = inter-arrival gaps > 100 ms between consecutive agent frames while the agent is talking
  (from its first frame after the end of speech to the `agent_stop_talking` event).

Per level: p50/p95/max latency (nearest rank), turns with gaps, missed replies, the server's CPU
(server process and all its children: the Piper workers are child processes; /proc utime+stime)
per call-minute, split into the event-loop thread (VAD, resampling, sockets), the other threads
(Whisper, database) and the children (Piper); RSS; and the rest of the machine's CPU ("other").
After the sweep it stops the server and reads the per-turn latency marks from the calls table of
its own SQLite file (read-only) for a stage breakdown (medians, seconds after the server's
user_speech_end). During each level a probe sends GET /health every 50 ms (--probe-interval): the
server's event loop answers it in ~1 ms unless it is blocked, so a slow probe at the same instant as
audio gaps in several calls points at an event-loop stall rather than a TTS underrun. Capacity =
the largest N with p95 < 1.5 s, no gaps and no missed replies, every smaller N of the sweep passing.

Run (from the repository root):
    .venv/bin/python bench/voice.py                                  # sweep 1,2,4,6,8,10,12; 3 turns
    .venv/bin/python bench/voice.py --calls 1,2,4,8 --turns 3
    .venv/bin/python bench/voice.py --calls 1 --seconds 60           # each caller talks for >= 60 s
    .venv/bin/python bench/voice.py --env VOXLINE_TTS_WORKERS=3      # server setting to try
    .venv/bin/python bench/voice.py --calls 1,4 --engine retell-llm  # the built-in LLM engine

Results go to bench/results/voice.json (--out). Ctrl-C stops the servers and removes the data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import soxr
import websockets
from websockets.asyncio.server import ServerConnection

from bench_server import Server, free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "voice.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
RMS_THRESHOLD = 300.0
GAP_S = 0.100
REPLY = "Sure, I can help you with that. What is your booking reference?"
TARGET_P50_ONE_CALL_S = 0.700
TARGET_P95_S = 1.5
TARGET_CALLS = 8

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
RECORDINGS: tuple[tuple[str, str], ...] = (
    ("goforward", "goforward.raw"),  # "go forward ten meters", raw 16 kHz PCM16
    ("ls_0880", "librivox/sense_and_sensibility_01_austen_64kb-0880.wav"),
    ("ls_0930", "librivox/sense_and_sensibility_01_austen_64kb-0930.wav"),
    ("cards_002", "cards/002.wav"),
    ("cards_003", "cards/003.wav"),
)
FLITE_SENTENCES: tuple[str, ...] = (
    "Hi, I would like to book a table for two tonight.",
    "Can you tell me your opening hours on Sunday?",
    "I need to move my appointment to Friday morning.",
)
STAGES: tuple[str, ...] = (
    "user_speech_end",
    "turn_decision",
    "asr_final",
    "llm_request",
    "llm_first_token",
    "tts_request",
    "tts_first_audio",
    "first_frame_sent",
)

STEPS: tuple[tuple[str, str], ...] = (  # per-turn steps around the response engine, reported in ms
    ("asr_final", "llm_request"),
    ("llm_request", "llm_first_token"),
    ("llm_first_token", "tts_request"),
    ("asr_final", "first_frame_sent"),
)


# --- utterances ---------------------------------------------------------------------------------------


@dataclass
class Clip:
    name: str
    pcm: bytes  # PCM16LE mono 16 kHz
    duration_s: float
    speech_end_s: float  # end of the last Silero speech segment


def to_pcm16(samples: np.ndarray, rate: int) -> bytes:
    audio = samples.astype(np.float32) / 32768
    if rate != RATE:
        audio = soxr.resample(audio, rate, RATE)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16-bit")
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        if wav.getnchannels() > 1:
            samples = samples.reshape(-1, wav.getnchannels())[:, 0]
        return samples, wav.getframerate()


def flite_samples(text: str) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        return read_wav(path)


def speech_end_s(pcm: bytes) -> float:
    """End of the last Silero speech segment (faster_whisper.vad, threshold 0.5, no padding)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    segments = get_speech_timestamps(audio, VadOptions(speech_pad_ms=0, min_silence_duration_ms=100))
    if not segments:
        return len(audio) / RATE
    return float(segments[-1]["end"]) / RATE


def load_clips() -> list[Clip]:
    """Recordings and flite sentences, interleaved so consecutive turns alternate between the two."""
    recorded: list[Clip] = []
    for name, rel in RECORDINGS:
        path = TESTDATA / rel
        if not path.exists():
            print(f"skipping missing {path}", file=sys.stderr)
            continue
        if path.suffix == ".raw":
            samples, rate = np.frombuffer(path.read_bytes(), dtype="<i2"), RATE
        else:
            samples, rate = read_wav(path)
        pcm = to_pcm16(samples, rate)
        recorded.append(Clip(name, pcm, len(pcm) / 2 / RATE, speech_end_s(pcm)))
    synthesised: list[Clip] = []
    if shutil.which("flite"):
        for i, text in enumerate(FLITE_SENTENCES):
            samples, rate = flite_samples(text)
            pcm = to_pcm16(samples, rate)
            synthesised.append(Clip(f"flite_{i}", pcm, len(pcm) / 2 / RATE, speech_end_s(pcm)))
    clips: list[Clip] = []
    for i in range(max(len(recorded), len(synthesised))):
        clips.extend(c[i] for c in (recorded, synthesised) if i < len(c))
    if not clips:
        raise SystemExit("no utterances: install pocketsphinx-testdata and/or flite")
    return clips


# --- CPU and memory of the server's process tree ------------------------------------------------------


def _stat_fields(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        stat = f.read()
    return stat[stat.rindex(b")") + 2 :].split()


def children(pid: int) -> list[int]:
    """All descendants of `pid` (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{p}/task/{task}/children") as f:
                    for child in f.read().split():
                        found.append(int(child))
                        todo.append(int(child))
    return found


@dataclass
class TreeCpu:
    """CPU seconds: the server's main thread, its other threads (incl. reaped children), its children."""

    wall: float
    main_thread: float
    other_threads: float
    children: float
    machine_busy: int
    machine_total: int
    bench: float
    threads: dict[int, float] = field(default_factory=dict)  # every server thread's own CPU s

    @classmethod
    def take(cls, pid: int) -> TreeCpu:
        f = _stat_fields(f"/proc/{pid}/stat")
        total = (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / CLK_TCK  # + cutime, cstime
        m = _stat_fields(f"/proc/{pid}/task/{pid}/stat")
        main = (int(m[11]) + int(m[12])) / CLK_TCK
        kids = 0.0
        for child in children(pid):
            with contextlib.suppress(OSError):
                c = _stat_fields(f"/proc/{child}/stat")
                kids += (int(c[11]) + int(c[12])) / CLK_TCK
        with open("/proc/stat", "rb") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle = values[3] + values[4]
        machine_total = sum(values[:8])
        b = _stat_fields(f"/proc/{os.getpid()}/stat")
        bench = (int(b[11]) + int(b[12])) / CLK_TCK
        threads: dict[int, float] = {}
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    t = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
                    threads[int(tid)] = (int(t[11]) + int(t[12])) / CLK_TCK
        return cls(time.monotonic(), main, total - main, kids, machine_total - idle, machine_total, bench, threads)


def cpu_delta(a: TreeCpu, b: TreeCpu) -> dict[str, float]:
    wall = b.wall - a.wall
    ncpu = os.cpu_count() or 1
    ticks = b.machine_total - a.machine_total
    machine_s = ncpu * wall * (b.machine_busy - a.machine_busy) / ticks if ticks else 0.0
    server = (b.main_thread - a.main_thread) + (b.other_threads - a.other_threads) + (b.children - a.children)
    bench = b.bench - a.bench
    return {
        "wall_s": round(wall, 2),
        "server_total_s": round(server, 2),
        "server_main_thread_s": round(b.main_thread - a.main_thread, 2),
        "server_other_threads_s": round(b.other_threads - a.other_threads, 2),
        "server_children_s": round(b.children - a.children, 2),
        "bench_client_s": round(bench, 2),
        "machine_s": round(machine_s, 2),
        "other_s": round(max(0.0, machine_s - server - bench), 2),
        # the busiest server threads (tid: CPU s); the main thread is the event loop
        "server_threads_s": dict(
            sorted(
                ((tid, round(cpu - a.threads.get(tid, 0.0), 2)) for tid, cpu in b.threads.items()),
                key=lambda kv: -kv[1],
            )[:8]
        ),
    }


def rss_mb(pid: int) -> dict[str, float]:
    def one(p: int) -> float:
        with open(f"/proc/{p}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB / 1024

    server = one(pid)
    kids = 0.0
    for child in children(pid):
        with contextlib.suppress(OSError):
            kids += one(child)
    return {"server_mb": round(server, 1), "children_mb": round(kids, 1), "total_mb": round(server + kids, 1)}


# --- the server under test ----------------------------------------------------------------------------


# --- the instant LLM server ---------------------------------------------------------------------------


@dataclass
class LlmLog:
    """What the instant LLM saw, per call id: (response_id, monotonic time, last user text)."""

    requests: dict[str, list[tuple[int, float, str]]] = field(default_factory=dict)


class InstantLlm:
    """LLM WebSocket server that answers every response_required at once, in one chunk."""

    def __init__(self, begin_message: str = "") -> None:
        self.begin_message = begin_message
        self.log = LlmLog()
        self.port = 0
        self._server: Any = None

    async def start(self) -> None:
        self._server = await websockets.serve(self._handle, "127.0.0.1", 0, compression=None)
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/llm-websocket"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        call_id = (ws.request.path if ws.request else "").rstrip("/").rsplit("/", 1)[-1]
        seen = self.log.requests.setdefault(call_id, [])
        await ws.send(json.dumps({"response_type": "config", "config": {"auto_reconnect": False}}))
        await ws.send(
            json.dumps(
                {"response_type": "response", "response_id": 0, "content": self.begin_message, "content_complete": True}
            )
        )
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                msg = json.loads(message)
                kind = msg.get("interaction_type")
                if kind in ("response_required", "reminder_required"):
                    rid = int(msg["response_id"])
                    await ws.send(
                        json.dumps(
                            {
                                "response_type": "response",
                                "response_id": rid,
                                "content": REPLY,
                                "content_complete": True,
                            }
                        )
                    )
                    users = [u.get("content", "") for u in msg.get("transcript", []) if u.get("role") == "user"]
                    seen.append((rid, time.monotonic(), users[-1] if users else ""))
                elif kind == "ping_pong":
                    await ws.send(json.dumps({"response_type": "ping_pong", "timestamp": msg.get("timestamp")}))


# --- the instant OpenAI-compatible provider (--engine retell-llm) ------------------------------------

Respond = Callable[[dict[str, Any]], list[dict[str, Any]]]
"""A request body -> the `chat.completion.chunk` deltas to stream (without id/object/model)."""

CALL_IN_PROMPT = re.compile(r"\(call (\S+?)\)")


def text_deltas(text: str, pieces: int = 4) -> list[dict[str, Any]]:
    """Role delta, `text` in `pieces` content deltas (split at spaces), finish_reason "stop"."""
    words = text.split(" ")
    size = -(-len(words) // pieces)
    parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    contents = [p if i == 0 else " " + p for i, p in enumerate(parts)]
    return [
        {"delta": {"role": "assistant", "content": ""}, "finish_reason": None},
        *({"delta": {"content": c}, "finish_reason": None} for c in contents),
        {"delta": {}, "finish_reason": "stop"},
    ]


def tool_call_deltas(name: str, arguments: dict[str, Any], call_id: str) -> list[dict[str, Any]]:
    """Role delta, one tool call (id and name first, then the arguments), finish_reason "tool_calls"."""
    first = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    rest = {"index": 0, "function": {"arguments": json.dumps(arguments)}}
    return [
        {"delta": {"role": "assistant", "content": None}, "finish_reason": None},
        {"delta": {"tool_calls": [first]}, "finish_reason": None},
        {"delta": {"tool_calls": [rest]}, "finish_reason": None},
        {"delta": {}, "finish_reason": "tool_calls"},
    ]


def sse_events(deltas: list[dict[str, Any]]) -> list[bytes]:
    """`data: {chunk}` events for the deltas, then `data: [DONE]`."""
    created = int(time.time())
    events = []
    for d in deltas:
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": created,
            "model": "bench-instant",
            "choices": [{"index": 0, **d}],
        }
        events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]


def completion(content: str) -> dict[str, Any]:
    """A non-streamed `chat.completion` answering with `content`."""
    message = {"role": "assistant", "content": content}
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "bench-instant",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def chunked(parts: list[bytes]) -> bytes:
    """An HTTP/1.1 chunked body: one chunk per part, then the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


class InstantOpenAi:
    """A minimal HTTP/1.1 (keep-alive) OpenAI-compatible server on loopback: every
    `POST …/chat/completions` with `stream: true` gets its whole SSE answer at once, chunked; one
    without (the server's post-call analysis) gets a `chat.completion` with content "{}".

    `respond` picks the deltas (default: REPLY as text). Any other request path is answered by
    `other` (a JSON body), 404 when None: the engine benchmark uses that for its tool server. The log
    keys requests by the call id the prompt carries (`(call <id>)`, from `{{call_id}}`)."""

    def __init__(self, respond: Respond | None = None, other: Callable[[str, bytes], bytes] | None = None) -> None:
        self.respond = respond or (lambda _body: text_deltas(REPLY))
        self.other = other
        self.log = LlmLog()
        self.requests = 0
        self.non_stream = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self.last_body: dict[str, Any] = {}
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # idle keep-alive connections: let their handlers end
                writer.close()
            await asyncio.sleep(0.05)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                method, path = request_line.split(" ")[:2]
                writer.write(self._answer(method, path, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, method: str, path: str, body: bytes) -> bytes:
        if method == "POST" and path.endswith("/chat/completions"):
            request = json.loads(body)
            if not request.get("stream"):  # the server's post-call analysis: an empty JSON object
                self.non_stream += 1
                return _response(200, "application/json", json.dumps(completion("{}")).encode())
            self.requests += 1
            self.last_body = request
            self._record(request)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            return head + chunked(sse_events(self.respond(request)))
        if self.other is not None:
            return _response(200, "application/json", self.other(path, body))
        return _response(404, "application/json", b'{"error": {"message": "not found"}}')

    def _record(self, request: dict[str, Any]) -> None:
        messages = request.get("messages") or [{}]
        match = CALL_IN_PROMPT.search(str(messages[0].get("content") or ""))
        seen = self.log.requests.setdefault(match.group(1) if match else "", [])
        users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
        seen.append((len(seen) + 1, time.monotonic(), users[-1] if users else ""))


def _response(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


# --- a simulated caller -------------------------------------------------------------------------------


@dataclass
class Received:
    at: float
    audio: bytes | None = None
    event: str | None = None


@dataclass
class TurnResult:
    caller: int
    turn: int
    clip: str
    call_id: str
    speech_end: float  # monotonic time the frame carrying the end of speech was sent
    latency_s: float | None = None  # first frame with RMS >= 300 minus speech_end
    first_frame_s: float | None = None  # first agent frame of any loudness minus speech_end
    reply_s: float | None = None  # first audio to agent_stop_talking
    frames: int = 0
    max_gap_s: float = 0.0
    gaps: int = 0
    gap_list: list[tuple[float, float]] = field(default_factory=list)  # (monotonic time the gap ended, gap s)
    replied: bool = False


class Caller:
    """One web call: joins, streams frames in real time, records what comes back."""

    def __init__(self, index: int, url: str, token: str) -> None:
        self.index = index
        self.url = url
        self.token = token
        self.call_id = ""
        self.received: list[Received] = []
        self._queue: asyncio.Queue[tuple[Clip, asyncio.Future[float]]] = asyncio.Queue()
        self._arrived = asyncio.Condition()
        self._ended = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.late_frames = 0  # frames sent more than one frame late (the client fell behind)

    async def __aenter__(self) -> Caller:
        self._ws = await websockets.connect(self.url, max_size=None, compression=None)
        await self._ws.send(json.dumps({"event_type": "join", "access_token": self.token, "sample_rate": RATE}))
        async with asyncio.timeout(10):
            first = json.loads(await self._ws.recv())
        if first.get("event_type") != "call_started":
            raise RuntimeError(f"join failed: {first}")
        self.call_id = first["call_id"]
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._send())]
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task
        await self._ws.close()

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    self.received.append(Received(now, audio=message))
                else:
                    with contextlib.suppress(ValueError):
                        self.received.append(Received(now, event=json.loads(message).get("event_type")))
                    async with self._arrived:
                        self._arrived.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._ended.set()
            async with self._arrived:
                self._arrived.notify_all()

    async def _send(self) -> None:
        """20 ms frames on an absolute real-time schedule: queued speech, else silence.

        For a clip, the future gets the send time of the frame carrying its end of speech."""
        silence = bytes(FRAME_BYTES)
        start = time.monotonic()
        n = 0
        clip: Clip | None = None
        done: asyncio.Future[float] | None = None
        offset = 0
        end_frame = 0
        while not self._ended.is_set():
            if clip is None and not self._queue.empty():
                clip, done = self._queue.get_nowait()
                offset = 0
                end_frame = max(0, (int(clip.speech_end_s * RATE) - 1) // FRAME_SAMPLES)
            if clip is not None:
                frame = clip.pcm[offset * FRAME_BYTES : (offset + 1) * FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
            else:
                frame = silence
            try:
                await self._ws.send(frame)
            except websockets.ConnectionClosed:
                return
            sent = time.monotonic()
            if clip is not None and done is not None:
                if offset == end_frame and not done.done():
                    done.set_result(sent)
                offset += 1
                if offset * FRAME_BYTES >= len(clip.pcm):
                    clip = None
            n += 1
            due = start + n * FRAME_MS / 1000
            delay = due - time.monotonic()
            if delay < -FRAME_MS / 1000:
                self.late_frames += 1
            await asyncio.sleep(max(0.0, delay))

    async def say(self, clip: Clip) -> float:
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((clip, done))
        return await done

    def _event_after(self, kind: str, after: float) -> float | None:
        for r in self.received:
            if r.at > after and r.event == kind:
                return r.at
        return None

    async def wait_event(self, kind: str, after: float) -> float | None:
        async with self._arrived:
            await self._arrived.wait_for(lambda: self._event_after(kind, after) is not None or self._ended.is_set())
        return self._event_after(kind, after)

    def analyse(self, turn: TurnResult, until: float) -> None:
        """Latency and gaps of the reply to `turn`, from its audio received before `until`."""
        stop = self._event_after("agent_stop_talking", turn.speech_end)
        end = min(stop, until) if stop is not None else until
        frames = [r for r in self.received if r.audio is not None and turn.speech_end < r.at <= end]
        turn.frames = len(frames)
        turn.replied = stop is not None and stop <= until
        if not frames:
            return
        turn.first_frame_s = frames[0].at - turn.speech_end
        for r in frames:
            samples = np.frombuffer(r.audio or b"", dtype="<i2").astype(np.float32)
            if samples.size and float(np.sqrt(np.mean(samples**2))) >= RMS_THRESHOLD:
                turn.latency_s = r.at - turn.speech_end
                break
        gaps = [b.at - a.at for a, b in itertools.pairwise(frames)]
        turn.max_gap_s = max(gaps, default=0.0)
        turn.gaps = sum(1 for g in gaps if g > GAP_S)
        turn.gap_list = [(round(frames[i].at - frames[0].at, 3), round(g, 3)) for i, g in enumerate(gaps) if g > GAP_S]
        if stop is not None:
            turn.reply_s = stop - frames[0].at


async def run_caller(
    index: int,
    delay: float,
    http: httpx.AsyncClient,
    ws_url: str,
    agent_id: str,
    clips: list[Clip],
    args: argparse.Namespace,
) -> tuple[list[TurnResult], dict[str, Any]]:
    await asyncio.sleep(delay)
    reply = await http.post("/v3/create-web-call", json={"agent_id": agent_id})
    reply.raise_for_status()
    token = reply.json()["access_token"]
    turns: list[TurnResult] = []
    async with Caller(index, ws_url, token) as caller:
        started = time.monotonic()
        await asyncio.sleep(args.lead)
        t = 0
        while t < args.turns or (args.seconds and time.monotonic() - started < args.seconds):
            clip = clips[(index * 3 + t) % len(clips)]
            end = await caller.say(clip)
            turn = TurnResult(index, t, clip.name, caller.call_id, end)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.reply_timeout):
                    await caller.wait_event("agent_stop_talking", end)
            caller.analyse(turn, time.monotonic())
            turns.append(turn)
            t += 1
            await asyncio.sleep(args.pause)
        duration = time.monotonic() - started
    info = {"caller": index, "call_id": caller.call_id, "duration_s": round(duration, 2)}
    info["late_client_frames"] = caller.late_frames
    return turns, info


# --- levels, statistics -------------------------------------------------------------------------------


T = TypeVar("T")


def split_results(
    results: Sequence[tuple[list[T], dict[str, Any]] | BaseException],
) -> tuple[list[T], list[dict[str, Any]], list[str]]:
    """The turns, call summaries and errors of callers run with `gather(..., return_exceptions=True)`,
    each caller returning (its turns, its call summary)."""
    turns: list[T] = []
    calls: list[dict[str, Any]] = []
    errors: list[str] = []
    for res in results:
        if isinstance(res, BaseException):
            errors.append(repr(res))
            continue
        turns.extend(res[0])
        calls.append(res[1])
    return turns, calls, errors


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(np.ceil(q / 100 * len(ordered))) - 1))
    return ordered[k]


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


async def run_level(
    n: int,
    server: Server,
    llm: InstantLlm | InstantOpenAi,
    http: httpx.AsyncClient,
    agent_id: str,
    clips: list[Clip],
    args: argparse.Namespace,
) -> dict[str, Any]:
    ws_url = f"ws://127.0.0.1:{server.port}/web-call-websocket"
    before = TreeCpu.take(server.pid)
    rss_peak: dict[str, float] = rss_mb(server.pid)
    stop_sampling = asyncio.Event()

    async def sample_rss() -> None:
        nonlocal rss_peak
        while not stop_sampling.is_set():
            now = rss_mb(server.pid)
            if now["total_mb"] > rss_peak["total_mb"]:
                rss_peak = now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop_sampling.wait()

    probes: list[tuple[float, float]] = []  # (monotonic send time, seconds to answer) of GET /health

    async def probe_loop() -> None:
        """The server's event loop answers /health at once unless it is blocked: a stall detector."""
        while not stop_sampling.is_set():
            sent = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                await http.get("/health")
                probes.append((sent, time.monotonic() - sent))
            await asyncio.sleep(max(0.0, sent + args.probe_interval - time.monotonic()))

    sampler = asyncio.create_task(sample_rss())
    prober = asyncio.create_task(probe_loop()) if args.probe_interval > 0 else None
    results = await asyncio.gather(
        *(run_caller(i, i * args.stagger / n, http, ws_url, agent_id, clips, args) for i in range(n)),
        return_exceptions=True,
    )
    stop_sampling.set()
    await sampler
    if prober is not None:
        await prober
    after = TreeCpu.take(server.pid)
    turns, calls, errors = split_results(results)
    for call in calls:
        requests = llm.log.requests.get(call["call_id"], [])
        call["llm_requests"] = len(requests)
        call["heard"] = [text for _rid, _at, text in requests]
    cpu = cpu_delta(before, after)
    call_minutes = sum(c["duration_s"] for c in calls) / 60
    lat = [t.latency_s for t in turns if t.latency_s is not None]
    missed = sum(1 for t in turns if t.latency_s is None or not t.replied)
    extra = sum(max(0, c["llm_requests"] - sum(1 for t in turns if t.call_id == c["call_id"])) for c in calls)
    level = {
        "calls": n,
        "turns": len(turns),
        "latency_s": {
            "p50": r3(percentile(lat, 50)),
            "p95": r3(percentile(lat, 95)),
            "max": r3(max(lat, default=None)),
            "min": r3(min(lat, default=None)),
        },
        "turns_with_gaps": sum(1 for t in turns if t.gaps),
        "max_gap_s": r3(max((t.max_gap_s for t in turns), default=0.0)),
        "missed_replies": missed,
        "extra_llm_requests": extra,
        "errors": errors,
        "call_minutes": round(call_minutes, 3),
        "cpu": cpu,
        "server_cpu_s_per_call_minute": round(cpu["server_total_s"] / call_minutes, 2) if call_minutes else None,
        "server_cpu_pct_of_one_core": round(100 * cpu["server_total_s"] / cpu["wall_s"], 1),
        "other_cpu_pct_of_one_core": round(100 * cpu["other_s"] / cpu["wall_s"], 1),
        "rss_peak": rss_peak,
        "health_probe": {
            "probes": len(probes),
            "p50_ms": r3(1000 * (percentile([d for _t, d in probes], 50) or 0.0)),
            "max_ms": r3(1000 * max((d for _t, d in probes), default=0.0)),
            "slow": [(round(t, 3), round(d, 3)) for t, d in probes if d > GAP_S],
        },
        "call_list": calls,
        "turn_list": [asdict(t) for t in turns],
    }
    ok = (
        level["latency_s"]["p95"] is not None
        and level["latency_s"]["p95"] < TARGET_P95_S
        and level["turns_with_gaps"] == 0
        and missed == 0
        and not errors
    )
    level["within_target"] = ok
    return level


def format_level(lv: dict[str, Any]) -> str:
    lat, cpu = lv["latency_s"], lv["cpu"]

    def f(x: float | None) -> str:
        return "  -  " if x is None else f"{x:5.3f}"

    return (
        f"N={lv['calls']:<3} turns {lv['turns']:>3}  latency s p50 {f(lat['p50'])} p95 {f(lat['p95'])} "
        f"max {f(lat['max'])}  gaps {lv['turns_with_gaps']:>2} (max {lv['max_gap_s']:.3f} s)  "
        f"missed {lv['missed_replies']}  CPU s/call-min {lv['server_cpu_s_per_call_minute']}  "
        f"server {lv['server_cpu_pct_of_one_core']:.0f}% (loop {cpu['server_main_thread_s']:.1f} s, "
        f"threads {cpu['server_other_threads_s']:.1f} s, piper {cpu['server_children_s']:.1f} s) "
        f"client {cpu['bench_client_s']:.1f} s other {lv['other_cpu_pct_of_one_core']:.0f}%  "
        f"RSS {lv['rss_peak']['total_mb']:.0f} MB  /health max {lv['health_probe']['max_ms']:.0f} ms"
        + ("  OK" if lv["within_target"] else "")
        + (f"\n    errors: {lv['errors'][:2]}" if lv["errors"] else "")
    )


# --- stage breakdown from the stored latency marks ----------------------------------------------------


def read_marks(db: Path) -> dict[str, list[dict[str, Any]]]:
    """call_id -> latency marks of its turns, from the calls table (opened read-only)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT call_id, config FROM calls").fetchall()
    finally:
        con.close()
    out: dict[str, list[dict[str, Any]]] = {}
    for call_id, config in rows:
        cfg = json.loads(config) if isinstance(config, str) else (config or {})
        out[call_id] = list(cfg.get("latency_marks") or [])
    return out


def breakdown(level: dict[str, Any], marks: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians (s) of each mark after the server's user_speech_end, over the level's answered turns;
    plus client-to-server offsets on the shared monotonic clock (same machine), and per-turn steps (ms)."""
    rows: dict[str, list[float]] = {s: [] for s in STAGES[1:]}
    steps: dict[tuple[str, str], list[float]] = {pair: [] for pair in STEPS}
    client_to_vad: list[float] = []
    sent_to_loud: list[float] = []
    turns_by_call: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for t in level["turn_list"]:
        turns_by_call[t["call_id"]].append(t)
    used = 0
    for call_id, client_turns in turns_by_call.items():
        server_turns = [m for m in marks.get(call_id, []) if (m.get("response_id") or 0) > 0 and not m.get("reminder")]
        for m in server_turns:
            end = m.get("user_speech_end")
            if end is None:
                continue
            used += 1
            for s in STAGES[1:]:
                if m.get(s) is not None:
                    rows[s].append(m[s] - end)
            for a, b in STEPS:
                if m.get(a) is not None and m.get(b) is not None:
                    steps[(a, b)].append(1000 * (m[b] - m[a]))
            # the client turn whose speech ended closest before the server's VAD end
            before = [t for t in client_turns if t["speech_end"] <= end + 0.5]
            if before:
                t = max(before, key=lambda t: t["speech_end"])
                client_to_vad.append(end - t["speech_end"])
                if t["latency_s"] is not None and m.get("first_frame_sent") is not None:
                    sent_to_loud.append(t["speech_end"] + t["latency_s"] - m["first_frame_sent"])
    return {
        "turns": used,
        "median_ms_per_turn": {
            f"{a} -> {b}": round(statistics.median(v), 2) if v else None for (a, b), v in steps.items()
        },
        "median_s_after_server_user_speech_end": {s: r3(statistics.median(v)) if v else None for s, v in rows.items()},
        "client_speech_end_to_server_user_speech_end_s": r3(statistics.median(client_to_vad))
        if client_to_vad
        else None,
        "server_first_frame_sent_to_client_first_loud_frame_s": r3(statistics.median(sent_to_loud))
        if sent_to_loud
        else None,
    }


def print_breakdown(title: str, b: dict[str, Any]) -> None:
    print(f"\nstage breakdown, {title} ({b['turns']} turns; medians, s after the server's user_speech_end):")
    prev = 0.0
    print(f"  client end of speech -> server user_speech_end   {b['client_speech_end_to_server_user_speech_end_s']}")
    for stage, v in b["median_s_after_server_user_speech_end"].items():
        step = "" if v is None else f"(+{v - prev:.3f})"
        print(f"  {stage:<18} {v if v is not None else '-':>7} {step}")
        if v is not None:
            prev = v
    loud = b["server_first_frame_sent_to_client_first_loud_frame_s"]
    print(f"  first_frame_sent -> client first loud frame      {loud}")
    steps = ", ".join(f"{k} {v} ms" for k, v in b["median_ms_per_turn"].items())
    print(f"  per-turn medians: {steps}")


# --- main -----------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()),
    }


RETELL_PROMPT = "You are the booking assistant of a restaurant (call {{call_id}}); answer in one short sentence."


async def start_llm(args: argparse.Namespace) -> InstantLlm | InstantOpenAi:
    """The instant LLM of the chosen engine: a custom-LLM WebSocket server, or an OpenAI-compatible
    provider on the port the server was told about (VOXLINE_LLM_BASE_URL)."""
    llm: InstantLlm | InstantOpenAi
    if args.engine == "retell-llm":
        llm = InstantOpenAi()
        await llm.start(args.llm_port)
    else:
        llm = InstantLlm(args.begin_message)
        await llm.start()
    return llm


async def create_agent(http: httpx.AsyncClient, llm: InstantLlm | InstantOpenAi, args: argparse.Namespace) -> str:
    """A piper-joe agent on the instant LLM; for retell-llm first a Retell LLM (the user speaks first)."""
    if isinstance(llm, InstantOpenAi):
        body = {"begin_message": args.begin_message, "start_speaker": "user", "general_prompt": RETELL_PROMPT}
        reply = await http.post("/create-retell-llm", json=body)
        reply.raise_for_status()
        engine: dict[str, Any] = {"type": "retell-llm", "llm_id": reply.json()["llm_id"]}
    else:
        engine = {"type": "custom-llm", "llm_websocket_url": llm.url}
    reply = await http.post("/create-agent", json={"voice_id": "piper-joe", "response_engine": engine})
    reply.raise_for_status()
    return str(reply.json()["agent_id"])


async def benchmark(args: argparse.Namespace, server: Server, clips: list[Clip]) -> dict[str, Any]:
    llm = await start_llm(args)
    levels: list[dict[str, Any]] = []
    try:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=30) as http:
            agent_id = await create_agent(http, llm, args)
            if args.warmup:
                warm = argparse.Namespace(**{**vars(args), "turns": 1, "seconds": 0})
                await run_caller(
                    0, 0.0, http, f"ws://127.0.0.1:{server.port}/web-call-websocket", agent_id, clips, warm
                )
                print("warm-up call done", flush=True)
            for n in args.calls:
                levels.append(await run_level(n, server, llm, http, agent_id, clips, args))
                print(format_level(levels[-1]), flush=True)
                await asyncio.sleep(args.rest)
    finally:
        await llm.close()
    provider = None
    if isinstance(llm, InstantOpenAi):
        provider = {"streamed_requests": llm.requests, "non_streamed_requests": llm.non_stream}
        provider["tcp_connections"] = llm.connections
    return {"levels": levels, "provider": provider}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    parser.add_argument("--calls", type=ints, default=[1, 2, 4, 6, 8, 10, 12], help="sweep of concurrent calls")
    parser.add_argument("--turns", type=int, default=3, help="turns per call (default 3)")
    parser.add_argument("--seconds", type=float, default=0.0, help="keep taking turns until each call is this long")
    parser.add_argument("--pause", type=float, default=1.0, help="caller silence after each reply (s, default 1)")
    parser.add_argument("--lead", type=float, default=1.0, help="silence after joining before turn 1 (s)")
    parser.add_argument("--stagger", type=float, default=3.0, help="spread of the callers' start times (s)")
    parser.add_argument("--reply-timeout", type=float, default=15.0, help="wait for a reply at most this (s)")
    parser.add_argument("--rest", type=float, default=2.0, help="pause between levels (s)")
    parser.add_argument(
        "--probe-interval", type=float, default=0.05, help="GET /health this often during a level (s; 0 = off)"
    )
    parser.add_argument(
        "--engine",
        choices=("custom-llm", "retell-llm"),
        default="custom-llm",
        help="response engine: the bench's custom-LLM WebSocket server (default) or the built-in LLM on the "
        "bench's instant OpenAI-compatible provider",
    )
    parser.add_argument("--begin-message", default="", help="agent's begin message ('' = user speaks first)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the warm-up call")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra server env")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temp data dir")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.calls or min(args.calls) < 1 or args.turns < 1:
        raise SystemExit("--calls and --turns must be positive")
    if any("=" not in item for item in args.env):
        raise SystemExit("--env takes NAME=VALUE")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    clips = load_clips()
    for c in clips:
        print(f"utterance {c.name:<10} {c.duration_s:5.2f} s, speech ends at {c.speech_end_s:5.2f} s")
    data_dir = Path(tempfile.mkdtemp(prefix="voxline-voice-bench-"))
    env = {"VOXLINE_MAX_CONCURRENT_CALLS": "64"}
    args.llm_port = 0
    if args.engine == "retell-llm":  # the provider binds this port once the benchmark's loop runs
        args.llm_port = free_port()
        env["VOXLINE_LLM_BASE_URL"] = f"http://127.0.0.1:{args.llm_port}/v1"
        env["VOXLINE_LLM_DEFAULT_MODEL"] = "bench-instant"
    server = Server(data_dir, env={**env, **dict(item.split("=", 1) for item in args.env)})
    code = 1
    try:
        info = machine_info()
        server.start(timeout=120)
        startup_lines = len(server.output)
        rss_idle = rss_mb(server.pid)
        print(f"server pid {server.pid} on 127.0.0.1:{server.port}, data {data_dir}, RSS {rss_idle}", flush=True)
        run = asyncio.run(benchmark(args, server, clips))
        problem = server.stop()
        if problem:
            print(f"server {problem}", file=sys.stderr)
        server_log = [line.rstrip() for line in list(server.output)[startup_lines:]]
        if server_log:
            print(f"server output during the run ({len(server_log)} lines, first 5):", file=sys.stderr)
            print("\n".join(server_log[:5]), file=sys.stderr)
        marks = read_marks(data_dir / "voxline.db")
        levels = run["levels"]
        for lv in levels:
            lv["stage_breakdown"] = breakdown(lv, marks)
        passing = [lv["calls"] for lv in levels if lv["within_target"]]
        capacity = 0  # the largest N that passed with every smaller N of the sweep passing too
        for lv in sorted(levels, key=lambda lv: lv["calls"]):
            if not lv["within_target"]:
                break
            capacity = lv["calls"]
        one = next((lv for lv in levels if lv["calls"] == 1), None)
        p50_one = one["latency_s"]["p50"] if one else None
        targets = {
            "p50_one_call_s": {
                "target": f"<= {TARGET_P50_ONE_CALL_S}",
                "value": p50_one,
                "met": p50_one is not None and p50_one <= TARGET_P50_ONE_CALL_S,
            },
            "calls_within_p95_1_5_s": {
                "target": f">= {TARGET_CALLS}",
                "value": capacity,
                "met": capacity >= TARGET_CALLS,
            },
        }
        result = {
            "benchmark": "voxline voice latency (bench/voice.py)",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "engine": args.engine,
            "provider": run["provider"],
            "machine": info,
            "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "method": {
                "speech_end": "end of last Silero segment (faster_whisper.vad, no padding), send time of its frame",
                "first_agent_audio": f"first received frame with RMS >= {RMS_THRESHOLD:g}",
                "gap": f"inter-arrival > {GAP_S * 1000:g} ms between agent frames while talking",
                "llm": f"instant, one chunk: {REPLY!r}"
                if args.engine == "custom-llm"
                else f"retell-llm on an instant OpenAI-compatible provider, SSE: role delta, 4 content deltas "
                f"of {REPLY!r}, finish_reason stop, [DONE]",
            },
            "utterances": [
                {"name": c.name, "duration_s": round(c.duration_s, 3), "speech_end_s": round(c.speech_end_s, 3)}
                for c in clips
            ],
            "server_rss_idle": rss_idle,
            "server_output": server_log,
            "levels": levels,
            "capacity_calls": capacity,
            "largest_passing_calls": max(passing, default=0),
            "targets": targets,
        }
        print("\nsummary (latency = caller's end of speech -> first agent frame with RMS >= 300):")
        print("  N  turns  p50    p95    max    gaps  missed  CPU s/call-min  other CPU %")
        for lv in levels:
            lat = lv["latency_s"]
            print(
                f"  {lv['calls']:<2} {lv['turns']:>5}  {lat['p50']}  {lat['p95']}  {lat['max']}  "
                f"{lv['turns_with_gaps']:>4}  {lv['missed_replies']:>6}  {lv['server_cpu_s_per_call_minute']:>14}  "
                f"{lv['other_cpu_pct_of_one_core']:>10}"
            )
        if one:
            print_breakdown("N=1", one["stage_breakdown"])
        biggest = levels[-1] if levels else None
        if biggest and biggest is not one:
            print_breakdown(f"N={biggest['calls']}", biggest["stage_breakdown"])
        print(
            f"\ncapacity: largest N with p95 < {TARGET_P95_S} s, no gaps, no missed replies (and every smaller N "
            f"too): {capacity}; largest passing N: {max(passing, default=0)}"
        )
        for name, t in targets.items():
            print(f"  {name:<24} {t['target']:<8} measured {t['value']}  {'MET' if t['met'] else 'NOT MET'}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.out}")
        code = 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the server", file=sys.stderr)
        code = 130
    except Exception as exc:
        print(f"benchmark failed: {exc!r}", file=sys.stderr)
        if server.output:
            print("server output (last lines):\n" + "".join(server.output), file=sys.stderr)
    finally:
        server.stop()
        if args.keep_data:
            print(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
