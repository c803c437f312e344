"""Soak run (issue 7): calls at half the measured capacity for a long time, then leak checks.

What it does, in one run:

* starts its own `voxline serve` (fresh temp data dir, VOXLINE_MAX_CONCURRENT_CALLS=64, extra
  `--env` settings) and the instant LLM WebSocket server of bench/voice.py, and creates one
  custom-LLM piper-joe agent on it;
* warms up with a round of `--warmup-calls` calls at once (default: as many as `--calls`; two turns
  each, all saying the same clips at the same moments), then with `--warmup-minutes` (default 5)
  of the same load as the soak, waits until the server is idle and takes the first sample: the idle
  baseline. A baseline after a single call would count bounded growth as a leak: the server's
  thread pools (database reads, VAD, Whisper) grow a thread only when work arrives while every
  thread is busy, each thread brings its own malloc arena and buffers, and the first minutes under
  load raise the memory to a plateau (the 30-minute run of 06:34 stepped up 100 MB in its first
  2.5 minutes after a one-round warm-up);
* keeps `--calls` call slots busy for `--minutes` (default 6 = half of the measured capacity of the
  2-core reference machine, 30 minutes). Each slot runs one simulated caller of bench/voice.py (a
  v3 web call, real-time 20 ms PCM16 frames of recorded and synthesised speech) for `--turns`
  turns, hangs up, and starts the next call at once, so calls keep starting and ending for the whole
  run. At the end, calls in flight finish their turns; no new ones start;
* waits until no call is live, then `--idle` seconds more, and takes the final (idle) sample;
* lists every call with `POST /v2/list-calls` and checks it ended with a disconnection reason.

Each sample (one every `--sample-every` seconds, printed as one line): RSS of the server process
and of its children (the Piper workers), the lowest and highest server RSS since the previous
sample (read from /proc every second), open fds and threads of the server from /proc,
`GET /voxline/runtime` (asyncio tasks by coroutine, live calls, gc objects), the server's CPU
since the previous sample, the calls started/ended so far, and the turns finished since the
previous sample: latency p50/p95 (caller's end of speech -> first agent frame with RMS >= 300,
as in bench/voice.py), missed replies, turns with audio gaps > 100 ms.

Pass criteria, the definition of "no leaks" used here:

* asyncio tasks: the idle server after the run has at most 2 more than the idle baseline;
* open file descriptors: likewise, at most 2 more;
* every call listed by the API has call_status "ended" and a non-empty disconnection_reason;
* no memory growth, three ways:
  - the C heap in use (glibc's `mallinfo2`, from the runtime route) at idle after the load is less
    than 10 MB above the idle baseline: what C code (Whisper, ONNX Runtime, numpy buffers) still
    holds. Python's own objects are compared by type at idle (`?object_types=true`, after a full
    collection), not judged;
  - the server process's RSS grows by less than 5 MB per 10 minutes over the second half of the
    load: the least-squares slope over the samples taken in the second half, each counting with the
    lowest RSS of its interval (under load RSS swings by tens of MB within seconds as audio and
    Whisper buffers come and go, which would swamp a 5 MB trend, while a leak raises the floor the
    swings start from);
  - the final idle RSS is less than 50 MB above the idle baseline: a large one-off retention the
    slope would not see.
  RSS can grow with no leak at all: memory freed in C stays in glibc's arenas (`malloc.free_bytes`)
  unless it is trimmed; the server trims after calls (`VOXLINE_MALLOC_TRIM_INTERVAL_S`), and
  `--env VOXLINE_MALLOC_TRIM_INTERVAL_S=0` shows the difference.

Threads and the children's RSS are reported but not judged.

Run (from the repository root):
    .venv/bin/python bench/soak.py                                    # 6 calls, 30 minutes, 4 turns
    .venv/bin/python bench/soak.py --calls 2 --minutes 2 --turns 2 --sample-every 20 --out /tmp/soak.json
    .venv/bin/python bench/soak.py --env MALLOC_ARENA_MAX=2             # server env (settings, allocator)
    .venv/bin/python bench/soak.py --minutes 60 --out bench/results/soak-60min.json

Results go to bench/results/soak.json (--out). Ctrl-C stops the calls and the servers, writes what
was sampled so far (marked "interrupted") and removes the data dir. The exit code is 0 when every
criterion passes, 1 when one fails, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench_server import Server
from voice import (
    Caller,
    Clip,
    InstantLlm,
    TreeCpu,
    TurnResult,
    children,
    cpu_delta,
    create_agent,
    load_clips,
    machine_info,
    percentile,
    r3,
    rss_mb,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "soak.json"

WARMUP_TURNS = 2
MAX_TASK_GROWTH = 2
MAX_FD_GROWTH = 2
MAX_SLOPE_MB_PER_10_MIN = 5.0
MAX_FINAL_GROWTH_MB = 50.0
MAX_HEAP_GROWTH_MB = 10.0


# --- what the run keeps -------------------------------------------------------------------------------


@dataclass
class SoakState:
    """Everything the run has seen so far (kept outside the event loop, so Ctrl-C can still write it)."""

    started: float = 0.0  # monotonic, when the load began
    calls_started: int = 0
    calls_ended: int = 0
    calls_failed: int = 0
    call_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    late_client_frames: int = 0
    warm_load: dict[str, Any] = field(default_factory=dict)  # what the warm-up load did (--warmup-minutes)
    turns: list[TurnResult] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    taken: int = 0  # turns already counted in a sample
    rss_series: list[tuple[float, float]] = field(default_factory=list)  # (t s, server MB), every second
    rss_taken: int = 0  # points of rss_series already summarised in a sample
    cpu: TreeCpu | None = None


def proc_figures(pid: int) -> dict[str, int | None]:
    """Open fds and OS threads of the server process, seen from outside (/proc)."""
    fds: int | None = None
    threads: int | None = None
    with contextlib.suppress(OSError):
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {"fds": fds, "threads": threads, "children": len(children(pid))}


def turn_stats(turns: Sequence[TurnResult]) -> dict[str, Any]:
    lat = [t.latency_s for t in turns if t.latency_s is not None]
    return {
        "turns": len(turns),
        "p50_s": r3(percentile(lat, 50)),
        "p95_s": r3(percentile(lat, 95)),
        "max_s": r3(max(lat, default=None)),
        "missed_replies": sum(1 for t in turns if t.latency_s is None or not t.replied),
        "turns_with_gaps": sum(1 for t in turns if t.gaps),
    }


async def take_sample(
    phase: str, state: SoakState, server: Server, monitor: httpx.AsyncClient, t0: float
) -> dict[str, Any]:
    """One sample; `monitor` is a client of its own, so the fds it holds are the same every time."""
    now = time.monotonic()
    cpu = TreeCpu.take(server.pid)
    asked = time.monotonic()
    runtime: dict[str, Any] | None = None
    try:
        idle = phase.startswith("idle")  # the object types only when idle: the walk holds the event loop
        reply = await monitor.get("/voxline/runtime", params={"object_types": "true"} if idle else None)
        reply.raise_for_status()
        runtime = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        state.errors.append(f"runtime sample: {exc!r}")
    runtime_ms = round(1000 * (time.monotonic() - asked), 1)
    new_turns = state.turns[state.taken :]
    state.taken = len(state.turns)
    rss = rss_mb(server.pid)
    window = [mb for _t, mb in state.rss_series[state.rss_taken :]] + [rss["server_mb"]]
    state.rss_taken = len(state.rss_series)
    server_cpu_pct = None
    if state.cpu is not None:
        delta = cpu_delta(state.cpu, cpu)
        if delta["wall_s"] > 0:
            server_cpu_pct = round(100 * delta["server_total_s"] / delta["wall_s"], 1)
    state.cpu = cpu
    sample = {
        "phase": phase,
        "t_s": round(now - t0, 1),
        "rss": rss,
        "rss_floor_mb": min(window),  # lowest server RSS since the previous sample (1 s readings)
        "rss_peak_mb": max(window),
        "proc": proc_figures(server.pid),
        "runtime": runtime,
        "runtime_ms": runtime_ms,
        "server_cpu_pct_of_one_core": server_cpu_pct,
        "calls_started": state.calls_started,
        "calls_ended": state.calls_ended,
        "calls_failed": state.calls_failed,
        "turns_since_last": turn_stats(new_turns),
    }
    state.samples.append(sample)
    print(format_sample(sample), flush=True)
    return sample


def format_sample(s: dict[str, Any]) -> str:
    rt = s["runtime"] or {}
    t = s["turns_since_last"]
    cpu = s["server_cpu_pct_of_one_core"]

    def f(x: float | None) -> str:
        return "  -  " if x is None else f"{x:5.3f}"

    return (
        f"[{s['phase']:<11} {s['t_s']:7.1f} s] RSS {s['rss']['server_mb']:6.1f} MB "
        f"({s['rss_floor_mb']:.0f}-{s['rss_peak_mb']:.0f}; children {s['rss']['children_mb']:5.1f})  "
        f"tasks {rt.get('asyncio_tasks', '-')}  fds {s['proc']['fds']}  "
        f"threads {s['proc']['threads']}  live {rt.get('live_calls', '-')}  gc {rt.get('gc_objects', '-')}  "
        f"heap {heap_text(rt.get('malloc'))} trims {rt.get('heap_trims', '-')}  "
        f"calls {s['calls_started']}/{s['calls_ended']} started/ended"
        + (f" ({s['calls_failed']} failed)" if s["calls_failed"] else "")
        + f"  turns {t['turns']} p50 {f(t['p50_s'])} p95 {f(t['p95_s'])} missed {t['missed_replies']} "
        f"gaps {t['turns_with_gaps']}  CPU {'-' if cpu is None else f'{cpu:.0f}%'}  runtime {s['runtime_ms']:.0f} ms"
    )


def heap_mb(runtime: dict[str, Any] | None, key: str) -> float | None:
    """`malloc.<key>` of a runtime sample in MB (None where the server could not tell)."""
    heap = (runtime or {}).get("malloc") or {}
    return None if heap.get(key) is None else round(heap[key] / 1e6, 1)


def trim_ms_mean(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """Mean time of the heap trims between two runtime samples (ms)."""
    trims = (after.get("heap_trims") or 0) - (before.get("heap_trims") or 0)
    seconds = (after.get("heap_trim_seconds") or 0.0) - (before.get("heap_trim_seconds") or 0.0)
    return round(1000 * seconds / trims, 2) if trims else None


def heap_text(heap: dict[str, Any] | None) -> str:
    if not heap:
        return "-"
    return f"{heap['in_use_bytes'] / 1e6:.0f}+{heap['free_bytes'] / 1e6:.0f} free MB"


# --- the calls ----------------------------------------------------------------------------------------


async def one_call(
    slot: int,
    serial: int,
    http: httpx.AsyncClient,
    ws_url: str,
    agent_id: str,
    clips: list[Clip],
    args: argparse.Namespace,
    state: SoakState,
) -> None:
    """One caller: create a web call, join, take `args.turns` turns, hang up. Turns are recorded as they end."""
    reply = await http.post("/v3/create-web-call", json={"agent_id": agent_id})
    reply.raise_for_status()
    body = reply.json()
    state.calls_started += 1
    state.call_ids.append(str(body.get("call_id", "")))
    try:
        async with Caller(slot, ws_url, body["access_token"]) as caller:
            await asyncio.sleep(args.lead)
            for t in range(args.turns):
                clip = clips[(serial * 3 + t) % len(clips)]
                end = await caller.say(clip)
                turn = TurnResult(slot, t, clip.name, caller.call_id, end)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(args.reply_timeout):
                        await caller.wait_event("agent_stop_talking", end)
                caller.analyse(turn, time.monotonic())
                turn.gap_list = []  # a soak keeps thousands of turns; the counts are enough
                state.turns.append(turn)
                await asyncio.sleep(args.pause)
            state.late_client_frames += caller.late_frames
    finally:
        state.calls_ended += 1


async def call_slot(
    slot: int,
    deadline: float,
    http: httpx.AsyncClient,
    ws_url: str,
    agent_id: str,
    clips: list[Clip],
    args: argparse.Namespace,
    state: SoakState,
) -> None:
    """Keep one call going until the deadline: each call that ends is replaced by a new one."""
    await asyncio.sleep(slot * args.stagger / args.calls)
    serial = slot
    while time.monotonic() < deadline:
        try:
            await one_call(slot, serial, http, ws_url, agent_id, clips, args, state)
        except Exception as exc:  # HTTP, WebSocket, join and timeout errors alike: count, go on
            state.calls_failed += 1
            if len(state.errors) < 100:
                state.errors.append(f"slot {slot} call {serial}: {exc!r}")
            await asyncio.sleep(1.0)  # a failing server must not be hammered in a tight loop
        serial += args.calls


async def poll_rss(pid: int, state: SoakState, t0: float) -> None:
    """The server's RSS every second: sample windows report its floor and peak (cancelled at the end)."""
    while True:
        with contextlib.suppress(OSError):
            state.rss_series.append((round(time.monotonic() - t0, 1), rss_mb(pid)["server_mb"]))
        await asyncio.sleep(1.0)


async def wait_until_idle(monitor: httpx.AsyncClient, within_s: float) -> bool:
    """Until the server runs no live call (True), or `within_s` seconds passed (False)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            reply = await monitor.get("/voxline/runtime")
            if reply.status_code == 200 and reply.json()["live_calls"] == 0:
                return True
        await asyncio.sleep(0.5)
    return False


async def list_all_calls(monitor: httpx.AsyncClient, page_size: int = 1000) -> list[dict[str, Any]]:
    """Every call, through the legacy list (bare array), `page_size` a page, oldest first."""
    calls: list[dict[str, Any]] = []
    body: dict[str, Any] = {"sort_order": "ascending", "limit": page_size}
    while True:
        reply = await monitor.post("/v2/list-calls", json=body)
        reply.raise_for_status()
        page = reply.json()
        calls.extend(page)
        if len(page) < body["limit"]:
            return calls
        body["pagination_key"] = page[-1]["call_id"]


async def sample_until(
    done: asyncio.Event,
    phase: str,
    state: SoakState,
    server: Server,
    monitor: httpx.AsyncClient,
    t0: float,
    every: float,
) -> None:
    """A sample every `every` seconds until `done` is set."""
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await done.wait()
        if not done.is_set():
            await take_sample(phase, state, server, monitor, t0)


async def warm_load(
    args: argparse.Namespace,
    state: SoakState,
    server: Server,
    monitor: httpx.AsyncClient,
    t0: float,
    base: str,
    headers: dict[str, str],
    ws_url: str,
    agent_id: str,
    clips: list[Clip],
) -> None:
    """`--warmup-minutes` of the same load as the soak, before the baseline: the first minutes under load
    raise RSS to a plateau (allocator arenas, the models' work buffers, per-call buffers of as many calls as
    have overlapped), which a baseline taken after one round of calls would count as growth. Its calls are
    checked for an end like the others; its turns and samples are reported apart (phase "warm")."""
    state.started = time.monotonic()
    done = asyncio.Event()
    sampling = asyncio.create_task(sample_until(done, "warm", state, server, monitor, t0, args.sample_every))
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            deadline = state.started + args.warmup_minutes * 60
            await asyncio.gather(
                *(call_slot(i, deadline, http, ws_url, agent_id, clips, args, state) for i in range(args.calls))
            )
    finally:
        done.set()
        await sampling
    state.warm_load = {
        "minutes": args.warmup_minutes,
        "calls_started": state.calls_started,
        "calls_failed": state.calls_failed,
        "turns": turn_stats(state.turns),
        "errors_so_far": len(state.errors),
    }
    print(f"warm-up load: {state.warm_load}", flush=True)
    state.calls_started = state.calls_ended = state.calls_failed = state.late_client_frames = 0
    state.turns, state.taken = [], 0


async def run_soak(args: argparse.Namespace, server: Server, clips: list[Clip], state: SoakState) -> dict[str, Any]:
    llm = InstantLlm("")
    await llm.start()
    base = f"http://127.0.0.1:{server.port}"
    ws_url = f"ws://127.0.0.1:{server.port}/web-call-websocket"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    t0 = time.monotonic()
    out: dict[str, Any] = {}
    rss_poller: asyncio.Task[None] | None = None
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as monitor:
            agent_id = await create_agent(monitor, llm, args)
            # Warm-up on a client of its own, closed before the baseline (its connections would count as fds).
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as warm_http:
                warm = SoakState()
                warm_args = argparse.Namespace(**{**vars(args), "turns": WARMUP_TURNS})
                # Same clips at the same moments: the transcriptions coincide, so the pools grow.
                results = await asyncio.gather(
                    *(
                        one_call(i, 0, warm_http, ws_url, agent_id, clips, warm_args, warm)
                        for i in range(args.warmup_calls)
                    ),
                    return_exceptions=True,
                )
                state.call_ids.extend(warm.call_ids)
            failed = [repr(r) for r in results if isinstance(r, BaseException)]
            state.errors.extend(f"warm-up: {e}" for e in failed)
            if len(failed) == len(results):
                raise RuntimeError(f"every warm-up call failed: {failed[:3]}")
            print(
                f"warm-up: {args.warmup_calls} call(s) at once ({len(failed)} failed), {turn_stats(warm.turns)}",
                flush=True,
            )
            rss_poller = asyncio.create_task(poll_rss(server.pid, state, t0))
            if args.warmup_minutes > 0:
                await warm_load(args, state, server, monitor, t0, base, headers, ws_url, agent_id, clips)
            await wait_until_idle(monitor, 60)
            await asyncio.sleep(args.idle)  # past uvicorn's 5 s keep-alive: the warm-up connection is gone
            state.cpu = TreeCpu.take(server.pid)
            before = await take_sample("idle_before", state, server, monitor, t0)

            state.started = time.monotonic()
            deadline = state.started + args.minutes * 60
            stop_sampling = asyncio.Event()
            sampling = asyncio.create_task(
                sample_until(stop_sampling, "load", state, server, monitor, t0, args.sample_every)
            )
            try:
                async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                    await asyncio.gather(
                        *(call_slot(i, deadline, http, ws_url, agent_id, clips, args, state) for i in range(args.calls))
                    )
            finally:
                stop_sampling.set()
                await sampling
            load_end = time.monotonic()
            await take_sample("load_end", state, server, monitor, t0)
            print(f"load done after {(load_end - state.started) / 60:.1f} min; waiting for the server to idle")
            idle = await wait_until_idle(monitor, 120)
            await asyncio.sleep(args.idle)
            after = await take_sample("idle_after", state, server, monitor, t0)
            listed = await list_all_calls(monitor)
        out = verdicts(args, state, before, after, listed, load_end - t0)
        out["server_idle_after_load"] = idle
    finally:
        if rss_poller is not None:
            rss_poller.cancel()
        await llm.close()
    return out


# --- verdicts -------------------------------------------------------------------------------------------


def slope_mb_per_10_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) points, in MB per 10 minutes; None with fewer than 3 points."""
    if len(points) < 3:
        return None
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return round(sxy / sxx * 600, 2)


def slope_stderr_mb_per_10_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Standard error of that slope (residual scatter / spread of the times): is a verdict near the
    threshold a trend or noise? None with fewer than 3 points."""
    slope = slope_mb_per_10_min(points)
    if slope is None:
        return None
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = slope / 600
    residuals = sum((y - (my + b * (x - mx))) ** 2 for x, y in points)
    sxx = sum((x - mx) ** 2 for x in xs)
    return round((residuals / (len(points) - 2) / sxx) ** 0.5 * 600, 2)


def name_difference(before: dict[str, Any] | None, after: dict[str, Any] | None, key: str) -> dict[str, int]:
    """Names (of `task_names` or `thread_names`) whose count changed between two runtime samples (after - before)."""
    a = collections.Counter((before or {}).get(key) or {})
    b = collections.Counter((after or {}).get(key) or {})
    return {name: b[name] - a[name] for name in sorted(set(a) | set(b)) if b[name] != a[name]}


def type_difference(before: dict[str, Any] | None, after: dict[str, Any] | None, top: int = 15) -> dict[str, int]:
    """The object types (of `gc_types`) that grew most between two idle runtime samples."""
    a = collections.Counter((before or {}).get("gc_types") or {})
    b = collections.Counter((after or {}).get("gc_types") or {})
    grown = sorted(((b[k] - a[k], k) for k in set(a) | set(b) if b[k] != a[k]), reverse=True)
    return {k: d for d, k in grown[:top]}


def verdicts(
    args: argparse.Namespace,
    state: SoakState,
    before: dict[str, Any],
    after: dict[str, Any],
    listed: list[dict[str, Any]],
    load_end_t: float,
) -> dict[str, Any]:
    rt_before, rt_after = before["runtime"] or {}, after["runtime"] or {}
    load = [s for s in state.samples if s["phase"] == "load"]  # not load_end: calls are still being wound up
    load_start_t = before["t_s"]
    half = load_start_t + (load_end_t - load_start_t) / 2
    second_half = [(s["t_s"], s["rss_floor_mb"]) for s in load if s["t_s"] >= half]
    slope = slope_mb_per_10_min(second_half)
    points_slope = slope_mb_per_10_min([(s["t_s"], s["rss"]["server_mb"]) for s in load if s["t_s"] >= half])
    every_second = slope_mb_per_10_min([(t, mb) for t, mb in state.rss_series if half <= t <= load_end_t])
    growth = round(after["rss"]["server_mb"] - before["rss"]["server_mb"], 1)
    heap_before, heap_after = heap_mb(rt_before, "in_use_bytes"), heap_mb(rt_after, "in_use_bytes")
    heap_growth = None if heap_before is None or heap_after is None else round(heap_after - heap_before, 1)
    heap_floor = [(s["t_s"], heap_mb(s["runtime"], "in_use_bytes")) for s in load if s["t_s"] >= half]
    children_growth = round(after["rss"]["children_mb"] - before["rss"]["children_mb"], 1)
    not_ended = [c for c in listed if c.get("call_status") != "ended"]
    no_reason = [c for c in listed if not c.get("disconnection_reason")]
    reasons = collections.Counter(str(c.get("disconnection_reason") or "(none)") for c in listed)
    statuses = collections.Counter(str(c.get("call_status")) for c in listed)
    listed_ids = {c.get("call_id") for c in listed}
    unlisted = [cid for cid in state.call_ids if cid not in listed_ids]
    figures: dict[str, Any] = {
        "memory_growth_mb": growth,
        "memory_slope_mb_per_10_min_second_half": slope,
        "memory_slope_points": len(second_half),
        "memory_slope_stderr": slope_stderr_mb_per_10_min(second_half),
        "memory_slope_of_point_readings": points_slope,  # the same samples' RSS at the instant: noisy
        "memory_slope_of_1s_readings": every_second,
        "rss_peak_mb_under_load": max((s["rss_peak_mb"] for s in load), default=None),
        "rss_idle_before_mb": before["rss"]["server_mb"],
        "rss_idle_after_mb": after["rss"]["server_mb"],
        "heap_in_use_mb_idle_before": heap_before,
        "heap_in_use_mb_idle_after": heap_after,
        "heap_in_use_growth_mb": heap_growth,
        "heap_free_mb_idle_before": heap_mb(rt_before, "free_bytes"),
        "heap_free_mb_idle_after": heap_mb(rt_after, "free_bytes"),
        "heap_in_use_slope_mb_per_10_min_second_half": slope_mb_per_10_min(
            [(t, mb) for t, mb in heap_floor if mb is not None]
        ),
        "heap_trims_during_load": (rt_after.get("heap_trims") or 0) - (rt_before.get("heap_trims") or 0),
        "heap_trim_ms_mean": trim_ms_mean(rt_before, rt_after),
        "warm_load": state.warm_load,
        "children_memory_growth_mb": children_growth,
        "tasks_idle_before": rt_before.get("asyncio_tasks"),
        "tasks_idle_after": rt_after.get("asyncio_tasks"),
        "task_names_changed": name_difference(rt_before, rt_after, "task_names"),
        "fds_idle_before": before["proc"]["fds"],
        "fds_idle_after": after["proc"]["fds"],
        "threads_idle_before": before["proc"]["threads"],
        "threads_idle_after": after["proc"]["threads"],
        "python_threads_idle_before": rt_before.get("threads"),
        "python_threads_idle_after": rt_after.get("threads"),
        "thread_names_changed": name_difference(rt_before, rt_after, "thread_names"),
        "object_types_grown": type_difference(rt_before, rt_after),
        "gc_objects_idle_before": rt_before.get("gc_objects"),
        "gc_objects_idle_after": rt_after.get("gc_objects"),
        "calls_total": len(listed),
        "calls_by_status": dict(statuses),
        "calls_by_reason": dict(reasons.most_common()),
        "calls_not_ended": len(not_ended),
        "calls_without_reason": len(no_reason),
        "calls_created_but_not_listed": len(unlisted),
        "problem_calls": [
            {k: c.get(k) for k in ("call_id", "call_status", "disconnection_reason")}
            for c in (not_ended + [c for c in no_reason if c not in not_ended])[:20]
        ],
        "load_calls_started": state.calls_started,
        "load_calls_failed": state.calls_failed,
        "load_turns": turn_stats(state.turns),
        "late_client_frames": state.late_client_frames,
    }

    def within(a: Any, b: Any, limit: int) -> bool:
        return isinstance(a, int) and isinstance(b, int) and b <= a + limit

    checks = {
        "tasks_back_to_baseline": {
            "criterion": f"tasks_idle_after <= tasks_idle_before + {MAX_TASK_GROWTH}",
            "value": f"{figures['tasks_idle_before']} -> {figures['tasks_idle_after']}",
            "passed": within(figures["tasks_idle_before"], figures["tasks_idle_after"], MAX_TASK_GROWTH),
        },
        "fds_back_to_baseline": {
            "criterion": f"fds_idle_after <= fds_idle_before + {MAX_FD_GROWTH}",
            "value": f"{figures['fds_idle_before']} -> {figures['fds_idle_after']}",
            "passed": within(figures["fds_idle_before"], figures["fds_idle_after"], MAX_FD_GROWTH),
        },
        "every_call_ended_with_a_reason": {
            "criterion": "call_status ended and a disconnection_reason for every listed call",
            "value": f"{len(listed)} calls, {len(not_ended)} not ended, {len(no_reason)} without reason",
            "passed": bool(listed) and not not_ended and not no_reason and not unlisted,
        },
        "memory_slope": {
            "criterion": f"slope of the server's RSS floor over the second half < {MAX_SLOPE_MB_PER_10_MIN} MB/10 min",
            "value": f"{slope} MB/10 min (standard error {figures['memory_slope_stderr']}) over "
            f"{len(second_half)} samples",
            "passed": slope is not None and slope < MAX_SLOPE_MB_PER_10_MIN,
        },
        "heap_in_use_growth": {
            "criterion": f"idle server's C heap in use (mallinfo2) after - before < {MAX_HEAP_GROWTH_MB} MB",
            "value": f"{heap_growth} MB ({heap_before} -> {heap_after})",
            "passed": heap_growth is not None and heap_growth < MAX_HEAP_GROWTH_MB,
        },
        "memory_final_growth": {
            "criterion": f"idle server RSS after - before < {MAX_FINAL_GROWTH_MB} MB",
            "value": f"{growth} MB",
            "passed": growth < MAX_FINAL_GROWTH_MB,
        },
    }
    return {"figures": figures, "checks": checks, "passed": all(c["passed"] for c in checks.values())}


def print_verdicts(result: dict[str, Any]) -> None:
    fig = result["figures"]
    print("\nsoak figures:")
    for key in (
        "memory_growth_mb",
        "rss_idle_before_mb",
        "rss_idle_after_mb",
        "heap_in_use_growth_mb",
        "heap_in_use_mb_idle_before",
        "heap_in_use_mb_idle_after",
        "heap_free_mb_idle_before",
        "heap_free_mb_idle_after",
        "heap_in_use_slope_mb_per_10_min_second_half",
        "heap_trims_during_load",
        "heap_trim_ms_mean",
        "memory_slope_mb_per_10_min_second_half",
        "memory_slope_stderr",
        "memory_slope_of_point_readings",
        "memory_slope_of_1s_readings",
        "rss_peak_mb_under_load",
        "children_memory_growth_mb",
        "tasks_idle_before",
        "tasks_idle_after",
        "fds_idle_before",
        "fds_idle_after",
        "threads_idle_before",
        "threads_idle_after",
        "gc_objects_idle_before",
        "gc_objects_idle_after",
        "calls_total",
        "calls_without_reason",
        "calls_not_ended",
        "load_calls_started",
        "load_calls_failed",
    ):
        print(f"  {key:<40} {fig[key]}")
    print(f"  {'calls_by_reason':<40} {fig['calls_by_reason']}")
    lt = fig["load_turns"]
    print(
        f"  {'turns (whole load)':<40} {lt['turns']} p50 {lt['p50_s']} p95 {lt['p95_s']} max {lt['max_s']} "
        f"missed {lt['missed_replies']} with gaps {lt['turns_with_gaps']}"
    )
    if fig["task_names_changed"]:
        print(f"  {'task_names_changed (after - before)':<40} {fig['task_names_changed']}")
    if fig["thread_names_changed"]:
        print(f"  {'thread_names_changed (after - before)':<40} {fig['thread_names_changed']}")
    if fig["object_types_grown"]:
        print(f"  {'object types grown (after - before)':<40} {fig['object_types_grown']}")
    if fig["problem_calls"]:
        print(f"  problem calls: {fig['problem_calls']}")
    print("\nverdicts:")
    for name, check in result["checks"].items():
        print(f"  {'PASS' if check['passed'] else 'FAIL'}  {name:<32} {check['value']}   ({check['criterion']})")
    print(f"  overall: {'PASS' if result['passed'] else 'FAIL'}")


# --- main -----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=6, help="concurrent calls kept up (default 6)")
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the load (default 30)")
    parser.add_argument("--turns", type=int, default=4, help="turns per call before it hangs up (default 4)")
    parser.add_argument("--pause", type=float, default=1.0, help="caller silence after each reply (s, default 1)")
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument(
        "--warmup-calls", type=int, default=None, help="calls of the warm-up round, at once (default: --calls)"
    )
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=5.0,
        help="minutes of the same load before the idle baseline, to reach the memory plateau (default 5; 0: none)",
    )
    parser.add_argument("--idle", type=float, default=10.0, help="idle wait before the idle samples (s, default 10)")
    parser.add_argument("--lead", type=float, default=1.0, help="silence after joining before turn 1 (s)")
    parser.add_argument("--stagger", type=float, default=3.0, help="spread of the slots' first calls (s)")
    parser.add_argument("--reply-timeout", type=float, default=15.0, help="wait for a reply at most this (s)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra server env")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temp data dir")
    args = parser.parse_args(argv)
    if args.warmup_calls is None:
        args.warmup_calls = args.calls
    args.engine = "custom-llm"  # what voice.create_agent reads
    args.begin_message = ""
    args.seconds = 0.0
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def dir_size_mb(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return round(total / 1e6, 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.calls < 1 or args.turns < 1 or args.minutes <= 0 or args.sample_every <= 0:
        raise SystemExit("--calls, --turns, --minutes and --sample-every must be positive")
    if any("=" not in item for item in args.env):
        raise SystemExit("--env takes KEY=VALUE")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    clips = load_clips()
    data_dir = Path(tempfile.mkdtemp(prefix="voxline-soak-"))
    env = {"VOXLINE_MAX_CONCURRENT_CALLS": "64", **dict(item.split("=", 1) for item in args.env)}
    server = Server(data_dir, env=env)
    state = SoakState()
    result: dict[str, Any] = {
        "benchmark": "voxline soak (bench/soak.py)",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "thresholds": {
            "max_task_growth": MAX_TASK_GROWTH,
            "max_fd_growth": MAX_FD_GROWTH,
            "max_slope_mb_per_10_min": MAX_SLOPE_MB_PER_10_MIN,
            "max_final_growth_mb": MAX_FINAL_GROWTH_MB,
            "max_heap_growth_mb": MAX_HEAP_GROWTH_MB,
        },
    }
    code = 1
    startup_lines = 0
    try:
        result["machine"] = machine_info()
        server.start(timeout=120)
        startup_lines = len(server.output)
        print(f"server pid {server.pid} on 127.0.0.1:{server.port}, data {data_dir}, RSS {rss_mb(server.pid)}")
        print(
            f"soak: {args.calls} calls kept up for {args.minutes:g} min, {args.turns} turns a call, "
            f"a sample every {args.sample_every:g} s",
            flush=True,
        )
        outcome = asyncio.run(run_soak(args, server, clips, state))
        result.update(outcome)
        result["data_dir_mb"] = dir_size_mb(data_dir)
        print_verdicts(outcome)
        code = 0 if outcome["passed"] else 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the calls and the server", file=sys.stderr)
        result["interrupted"] = True
        code = 130
    except Exception as exc:
        print(f"soak failed: {exc!r}", file=sys.stderr)
        result["failure"] = repr(exc)
        if server.output:
            print("server output (last lines):\n" + "".join(list(server.output)[-20:]), file=sys.stderr)
    finally:
        problem = server.stop()
        if problem:
            print(f"server {problem}", file=sys.stderr)
            result["server_stop_problem"] = problem
        result["server_output"] = [line.rstrip() for line in list(server.output)[startup_lines:]]
        if result["server_output"]:
            print(f"server output during the run: {len(result['server_output'])} lines (in the JSON)", file=sys.stderr)
        result["samples"] = state.samples
        result["rss_series"] = state.rss_series
        result["errors"] = state.errors
        result["turns"] = [asdict(t) for t in state.turns]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
        if args.keep_data:
            print(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
