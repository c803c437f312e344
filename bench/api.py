"""Control-plane benchmark of a real `voxline serve` on the embedded default (SQLite + local files).

Starts its own server subprocess (fresh temp data dir, free loopback port, VOXLINE_LOG_LEVEL=warning),
creates one agent, warms up, then drives N concurrent keep-alive clients through three phases, one after
the other, in the same run:

  1. GET  /health                    trivial endpoint of the same server: the baseline
  2. POST /v3/create-web-call        one INSERT per request (the single SQLite writer)
  3. GET  /v2/get-call/{id}          over the ids created in phase 2 (reader pool)

Per phase it prints requests, errors (non-2xx or failed), throughput (2xx responses per second),
latency p50/p90/p99/max (nearest rank), the server process's CPU (all its threads, from /proc/<pid>/stat
utime+stime, split into the event-loop thread and the rest), this client process's CPU and the rest of the
machine's; then the issue targets (create-web-call >= 500 req/s, get-call p99 <= 20 ms) and each
endpoint's throughput as a ratio of /health's. The same figures, with machine info, the parameters and
per-second throughput, go to bench/results/api.json (--out to change). CPU % is of one core.

The default load generator is a raw HTTP/1.1 keep-alive client over asyncio streams (uvloop when
installed), one connection per virtual client, pre-built request bytes: ~30 us of client CPU per request
against ~120 us of server CPU for /health, so on a 2-core machine the server keeps one core's worth.
`--client httpx` uses httpx.AsyncClient (HTTP/1.1, one shared keep-alive pool) instead: it measured
~1.35 ms of client CPU per request, so it saturates its core at ~740 req/s and cannot measure /health.

Run (from the repository root):
    .venv/bin/python bench/api.py [--concurrency N] [--seconds S]
    .venv/bin/python bench/api.py --requests 5000          # fixed request count per phase instead
    .venv/bin/python bench/api.py --client httpx           # the httpx client, for comparison
    .venv/bin/python bench/api.py --pin                    # server on CPU 0, client on CPU 1
    .venv/bin/python bench/api.py --env VOXLINE_SQLITE_READ_POOL_SIZE=16   # server setting to try

Ctrl-C (or SIGTERM) stops the server and removes its data dir (--keep-data keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_server import Server

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "api.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")

AGENT_BODY = {
    "voice_id": "piper-joe",
    "response_engine": {"type": "custom-llm", "llm_websocket_url": "ws://127.0.0.1:9/llm-websocket"},
}
TARGET_CREATE_RPS = 500.0
TARGET_GET_P99_MS = 20.0
CALL_ID_RE = re.compile(rb'"call_id":"(call_[0-9a-f]+)"')


# --- CPU accounting ---------------------------------------------------------------------------------


def process_cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime in seconds (/proc stat fields 14 and 15): of every thread of `pid`, or of thread `tid`."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path, "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from the first line of /proc/stat."""
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


@dataclass
class CpuSample:
    wall: float
    server: float
    server_main_thread: float
    client: float
    machine_busy: int
    machine_total: int

    @classmethod
    def take(cls, server_pid: int) -> CpuSample:
        busy, total = machine_cpu_ticks()
        return cls(
            time.perf_counter(),
            process_cpu_seconds(server_pid),
            process_cpu_seconds(server_pid, server_pid),
            process_cpu_seconds(os.getpid()),
            busy,
            total,
        )


def cpu_split(start: CpuSample, end: CpuSample) -> dict[str, float]:
    """CPU % of one core (100 = one core busy) for server, client, the whole machine, and everything else.

    The server's figure is split into its main thread (event loop: HTTP, FastAPI, SQLAlchemy, our code)
    and its other threads (the database threads that run each transaction).
    """
    wall = end.wall - start.wall
    ncpu = os.cpu_count() or 1
    server = 100 * (end.server - start.server) / wall
    main_thread = 100 * (end.server_main_thread - start.server_main_thread) / wall
    client = 100 * (end.client - start.client) / wall
    ticks = end.machine_total - start.machine_total
    machine = 100 * ncpu * (end.machine_busy - start.machine_busy) / ticks if ticks else 0.0
    return {
        "server_cpu_pct": round(server, 1),
        "server_main_thread_cpu_pct": round(main_thread, 1),
        "server_other_threads_cpu_pct": round(server - main_thread, 1),
        "client_cpu_pct": round(client, 1),
        "machine_cpu_pct": round(machine, 1),
        "other_cpu_pct": round(max(0.0, machine - server - client), 1),
    }


# --- the server under test --------------------------------------------------------------------------


# --- clients -----------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes


class ClientError(Exception):
    pass


class RawConnection:
    """One HTTP/1.1 keep-alive connection over asyncio streams; requests are pre-built bytes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, raw: bytes) -> Reply:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = -1
            chunked = False
            keep_alive = True
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif name == b"connection" and value.strip().lower() == b"close":
                    keep_alive = False
            if chunked:
                body = await self._read_chunked()
            elif length >= 0:
                body = await self.reader.readexactly(length)
            else:
                body = await self.reader.read()
                keep_alive = False
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            await self.close()
            raise ClientError(repr(exc)) from exc
        if not keep_alive:
            await self.close()
        return Reply(status, body)

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass(frozen=True)
class Op:
    """One request kind, in both forms: raw bytes for the raw client, parts for httpx."""

    method: str
    path: str
    body: bytes | None
    raw: bytes


def build_op(method: str, path: str, api_key: str, port: int, body: dict[str, Any] | None = None) -> Op:
    payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Authorization: Bearer {api_key}"]
    if payload is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (payload or b"")
    return Op(method, path, payload, raw)


class LoadClient:
    """Sends an Op on the caller's virtual connection; `raw` or `httpx`."""

    def __init__(self, kind: str, port: int, api_key: str, concurrency: int) -> None:
        self.kind = kind
        self.port = port
        self.api_key = api_key
        self.concurrency = concurrency
        self._httpx: Any = None
        self._open: list[RawConnection] = []

    async def __aenter__(self) -> LoadClient:
        if self.kind == "httpx":
            import httpx

            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._httpx = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{self.port}",
                headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
                limits=limits,
                timeout=60,
                http2=False,
            )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._httpx is not None:
            await self._httpx.aclose()

    def connection(self) -> Callable[[Op], Awaitable[Reply]]:
        """A sender bound to one keep-alive connection (raw) or the shared pool (httpx)."""
        if self.kind == "httpx":
            client = self._httpx

            async def send_httpx(op: Op) -> Reply:
                try:
                    r = await client.request(op.method, op.path, content=op.body)
                except Exception as exc:
                    raise ClientError(repr(exc)) from exc
                return Reply(r.status_code, r.content)

            return send_httpx
        conn = RawConnection(self.port)
        self._open.append(conn)

        async def send_raw(op: Op) -> Reply:
            return await conn.request(op.raw)

        return send_raw

    async def close_connections(self) -> None:
        conns, self._open = self._open, []
        for conn in conns:
            await conn.close()


# --- phases -------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    endpoint: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    throughput_rps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    per_second_rps: list[int] = field(default_factory=list)
    sample_errors: list[str] = field(default_factory=list)


def per_second(finished: list[list[int]], t_start: int) -> list[int]:
    """Responses completed in each whole second of the phase (a partial last second is dropped)."""
    buckets: collections.Counter[int] = collections.Counter()
    for ends in finished:
        for t in ends:
            buckets[(t - t_start) // 1_000_000_000] += 1
    last = max(buckets, default=-1)
    return [buckets[i] for i in range(last)]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


async def run_phase(
    name: str,
    endpoint: str,
    client: LoadClient,
    pick: Callable[[int], Op],
    *,
    concurrency: int,
    seconds: float,
    requests: int | None,
    server_pid: int,
    on_reply: Callable[[Reply], None] | None = None,
) -> PhaseResult:
    """`concurrency` workers, each on its own connection, until `seconds` pass or `requests` are sent."""
    latencies: list[list[int]] = [[] for _ in range(concurrency)]
    finished: list[list[int]] = [[] for _ in range(concurrency)]
    statuses: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    counter = 0
    perf = time.perf_counter_ns

    async def worker(index: int) -> None:
        nonlocal counter
        send = client.connection()
        mine = latencies[index]
        ends = finished[index]
        while True:
            if requests is not None:
                if counter >= requests:
                    return
            elif perf() >= deadline:
                return
            n = counter
            counter += 1
            op = pick(n)
            t0 = perf()
            try:
                reply = await send(op)
            except ClientError as exc:
                t1 = perf()
                mine.append(t1 - t0)
                ends.append(t1)
                statuses["error"] += 1
                if len(errors) < 5:
                    errors.append(exc.args[0])
                continue
            t1 = perf()
            mine.append(t1 - t0)
            ends.append(t1)
            statuses[str(reply.status)] += 1
            if 200 <= reply.status < 300:
                if on_reply is not None:
                    on_reply(reply)
            elif len(errors) < 5:
                errors.append(f"{reply.status} {reply.body[:200]!r}")

    start = CpuSample.take(server_pid)
    t_start = perf()
    deadline = t_start + int(seconds * 1e9)
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    end = CpuSample.take(server_pid)
    await client.close_connections()

    all_ns = sorted(ns for per_worker in latencies for ns in per_worker)
    ms = [ns / 1e6 for ns in all_ns]
    ok = sum(c for s, c in statuses.items() if s != "error" and 200 <= int(s) < 300)
    elapsed = end.wall - start.wall
    return PhaseResult(
        name=name,
        endpoint=endpoint,
        requests=len(ms),
        errors=len(ms) - ok,
        seconds=round(elapsed, 3),
        throughput_rps=round(ok / elapsed, 1),
        latency_ms={
            "p50": round(percentile(ms, 50), 2),
            "p90": round(percentile(ms, 90), 2),
            "p99": round(percentile(ms, 99), 2),
            "max": round(ms[-1], 2) if ms else float("nan"),
            "mean": round(sum(ms) / len(ms), 2) if ms else float("nan"),
        },
        cpu=cpu_split(start, end),
        status_counts=dict(statuses),
        per_second_rps=per_second(finished, t_start),
        sample_errors=errors,
    )


# --- the run ------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("voxline", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "sqlalchemy", "psycopg"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "packages": versions,
    }


async def create_agent(port: int, api_key: str) -> str:
    conn = RawConnection(port)
    try:
        reply = await conn.request(build_op("POST", "/create-agent", api_key, port, AGENT_BODY).raw)
    finally:
        await conn.close()
    if not 200 <= reply.status < 300:
        raise RuntimeError(f"create-agent failed: {reply.status} {reply.body[:500]!r}")
    return str(json.loads(reply.body)["agent_id"])


async def benchmark(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    port, key = server.port, server.api_key
    agent_id = await create_agent(port, key)
    health = build_op("GET", "/health", key, port)
    create = build_op("POST", "/v3/create-web-call", key, port, {"agent_id": agent_id})
    call_ids: list[str] = []
    get_ops: list[Op] = []

    def remember_call(reply: Reply) -> None:
        match = CALL_ID_RE.search(reply.body)
        if match:
            call_ids.append(match.group(1).decode())

    common = {"concurrency": args.concurrency, "server_pid": server.pid}
    async with LoadClient(args.client, port, key, args.concurrency) as client:
        # Warm-up: imports, pools, SQLite page cache, code paths; not recorded.
        warm: list[str] = []
        warm_ids: list[str] = []
        for name, pick, hook in (
            ("health", lambda n: health, None),
            ("create", lambda n: create, lambda r: warm_ids.extend(m.decode() for m in CALL_ID_RE.findall(r.body))),
            ("get", lambda n: build_op("GET", f"/v2/get-call/{warm_ids[n % max(1, len(warm_ids))]}", key, port), None),
        ):
            result = await run_phase(
                f"warmup-{name}",
                name,
                client,
                pick,
                seconds=args.warmup,
                requests=None,
                on_reply=hook,
                **common,
            )
            warm.append(f"{name}: {result.requests} req, {result.errors} errors")
        print("warm-up:", "; ".join(warm), flush=True)

        phases: list[PhaseResult] = []
        limits = {"seconds": args.seconds, "requests": args.requests}
        phases.append(await run_phase("health", "GET /health", client, lambda n: health, **limits, **common))
        print(format_phase(phases[-1]), flush=True)
        phases.append(
            await run_phase(
                "create-web-call",
                "POST /v3/create-web-call",
                client,
                lambda n: create,
                on_reply=remember_call,
                **limits,
                **common,
            )
        )
        print(format_phase(phases[-1]), flush=True)
        if not call_ids:
            raise RuntimeError("create-web-call returned no call ids: " + "; ".join(phases[-1].sample_errors))
        get_ops = [build_op("GET", f"/v2/get-call/{cid}", key, port) for cid in call_ids]
        phases.append(
            await run_phase(
                "get-call",
                "GET /v2/get-call/{id}",
                client,
                lambda n: get_ops[n % len(get_ops)],
                **limits,
                **common,
            )
        )
        print(format_phase(phases[-1]), flush=True)
        # Latency is queueing once the server is saturated (p50 ~ clients / throughput); the sweep
        # shows get-call latency at lighter loads, each level for half the phase time.
        for level in args.sweep:
            if level >= args.concurrency:
                continue
            phases.append(
                await run_phase(
                    f"get-call-c{level}",
                    f"GET /v2/get-call/{{id}} c={level}",
                    client,
                    lambda n: get_ops[n % len(get_ops)],
                    concurrency=level,
                    server_pid=server.pid,
                    seconds=args.seconds / 2,
                    requests=None,
                )
            )
            print(format_phase(phases[-1]), flush=True)

    by_name = {p.name: p for p in phases}
    base = by_name["health"].throughput_rps or float("nan")
    create_rps = by_name["create-web-call"].throughput_rps
    get_p99 = by_name["get-call"].latency_ms["p99"]
    targets = {
        "create_web_call_rps": {"target": f">= {TARGET_CREATE_RPS:g}", "value": create_rps},
        "get_call_p99_ms": {"target": f"<= {TARGET_GET_P99_MS:g}", "value": get_p99},
    }
    targets["create_web_call_rps"]["met"] = create_rps >= TARGET_CREATE_RPS and by_name["create-web-call"].errors == 0
    targets["get_call_p99_ms"]["met"] = get_p99 <= TARGET_GET_P99_MS and by_name["get-call"].errors == 0
    ratios = {p.name: round(p.throughput_rps / base, 3) for p in phases if p.name in ("create-web-call", "get-call")}
    return {
        "benchmark": "voxline control-plane API (bench/api.py)",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "parameters": {
            "concurrency": args.concurrency,
            "get_call_sweep": args.sweep,
            "seconds_per_phase": None if args.requests else args.seconds,
            "requests_per_phase": args.requests,
            "warmup_seconds_per_endpoint": args.warmup,
            "client": args.client,
            "pinned": args.pin,
            "server_env": dict(item.split("=", 1) for item in args.env),
            "backend": "sqlite + local files (embedded default)",
            "calls_for_get_call": len(call_ids),
        },
        "phases": [asdict(p) for p in phases],
        "targets": targets,
        "throughput_ratio_to_health": ratios,
    }


def format_phase(p: PhaseResult) -> str:
    lat, cpu = p.latency_ms, p.cpu
    return (
        f"{p.endpoint:<24} {p.requests:>7} req {p.errors:>4} err {p.throughput_rps:>7.1f} req/s  "
        f"ms p50 {lat['p50']:>6.2f} p90 {lat['p90']:>6.2f} p99 {lat['p99']:>6.2f} max {lat['max']:>7.2f}  "
        f"CPU% server {cpu['server_cpu_pct']:>5.1f} (main {cpu['server_main_thread_cpu_pct']:>5.1f}) "
        f"client {cpu['client_cpu_pct']:>5.1f} other {cpu['other_cpu_pct']:>5.1f}"
        + (f"\n    errors e.g.: {p.sample_errors[0]}" if p.sample_errors else "")
    )


def print_summary(result: dict[str, Any]) -> None:
    m, params = result["machine"], result["parameters"]
    print()
    print(
        f"machine: {m['nproc']} x {m['cpu_model']}, Python {m['python']}; client={params['client']}, "
        f"concurrency={params['concurrency']}, "
        + (
            f"{params['requests_per_phase']} requests/phase"
            if params["requests_per_phase"]
            else f"{params['seconds_per_phase']} s/phase"
        )
    )
    print(
        "CPU % is of one core (100 = one full core); 'main' = the server's event-loop thread (the rest is its\n"
        "database threads); 'other' = the rest of the machine in the same interval."
    )
    print()
    print("targets (issue 2, 2-core machine):")
    for name, t in result["targets"].items():
        print(f"  {name:<22} {t['target']:<8} measured {t['value']:>8}  {'MET' if t['met'] else 'NOT MET'}")
    print("throughput relative to /health (same run):")
    for name, ratio in result["throughput_ratio_to_health"].items():
        print(f"  {name:<22} {ratio:.3f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase (default 10)")
    parser.add_argument(
        "--requests", type=int, default=None, help="fixed request count per phase (overrides --seconds)"
    )
    parser.add_argument(
        "--sweep",
        type=lambda text: [int(x) for x in text.split(",") if x],
        default=[1, 4, 8, 16],
        help="get-call at these lower concurrencies too (default 1,4,8,16; empty to skip)",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per endpoint (default 1)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator (default raw)")
    parser.add_argument("--pin", action="store_true", help="pin the server to CPU 0 and this client to CPU 1")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server environment, e.g. VOXLINE_DATABASE_READ_THREADS=1 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temp data dir and print it")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.concurrency < 1 or (args.requests is not None and args.requests < 1) or args.seconds <= 0:
        raise SystemExit("--concurrency, --requests and --seconds must be positive")
    if any("=" not in item for item in args.env):
        raise SystemExit("--env takes NAME=VALUE")
    server_env = dict(item.split("=", 1) for item in args.env)
    # The server runs in its own session (so Ctrl-C reaches only us); SIGTERM/SIGHUP must stop it too.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    data_dir = Path(tempfile.mkdtemp(prefix="voxline-bench-"))
    server = Server(data_dir, cpu=0 if args.pin else None, env=server_env)
    if args.pin:
        os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    code = 1
    try:
        server.start()
        print(f"server pid {server.pid} on 127.0.0.1:{server.port}, data {data_dir}", flush=True)
        result = asyncio.run(benchmark(args, server))
        print_summary(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
        code = 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the server", file=sys.stderr)
        code = 130
    except Exception as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        if server.output:
            print("server output (last lines):\n" + "".join(server.output), file=sys.stderr)
    finally:
        problem = server.stop()
        if problem:
            print(f"server {problem}", file=sys.stderr)
            code = code or 1
        if args.keep_data:
            print(f"data kept in {data_dir}")
        else:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
