"""Engine micro-benchmark (issue 4): the built-in LLM engine's own cost, without speech.

Everything runs in this one process on one event loop, on loopback: the instant OpenAI-compatible
provider of bench/voice.py (`InstantOpenAi`: every streamed chat completion answered at once with a
role delta, four content deltas, finish_reason "stop" and `data: [DONE]`), a second instance of it
serving as the custom tool's server (a small JSON body), an `OpenAiChat` client on the provider and
a `RetellLlmEngine` driven directly, like tests/test_retell_llm_engine.py does (nothing imported
from tests/). The Retell LLM has 3 states; the starting state (booking) shows the model 4 tools
(end_call, a custom lookup_booking, an extract_dynamic_variable note_details, a custom
check_availability) plus one transition; the prompts use dynamic variables, and every request
carries a 10-turn history (10 user and 9 agent utterances with word timings, ending with the user).

Measured per iteration (interleaved, so machine noise falls on all of them alike), in ms:

* floor_min: `OpenAiChat.stream` with a one-message request -> first TextDelta;
* floor: the same with the exact body the engine sends for `engine` (captured during the warm-up);
* floor_done: the same request -> StreamDone. The instant provider delivers the whole reply in one
  write, so the engine's task parses all of it before it next yields and its first chunk reaches
  the reader only then: engine - floor_done is the engine's own cost, engine - floor includes that;
* engine: `RetellLlmEngine.request_response` -> first `ResponseChunk` with text, read from
  `engine.events()` (then the rest of the reply is drained before the next iteration);
* engine_min: the same for an LLM with no states or tools and a one-utterance history;
* tool_leg / tool_http / continuation: the floors of a reply with one custom tool call: the
  stream with the engine's first request body -> `StreamDone` (the tool call is only known at the
  end of the stream), a plain httpx POST of the engine's tool request body to the tool server ->
  response, and the stream with the engine's second request body -> first TextDelta;
* engine_tool: `request_response` -> first text chunk of the continuation after the tool result
  (the provider answers with a check_availability call; the tool's server on loopback,
  `allow_private_tool_urls=True`, the server's guarded httpx transport).

Overheads: engine - floor, engine - floor_done, engine_min - floor_min and
engine_tool - (tool_leg + tool_http + continuation), for p50 and p95. Also the CPU time of building
one request (system prompt, history, tools, ChatRequest), in a loop without I/O.

Run (from the repository root):
    .venv/bin/python bench/retell_llm.py               # N=300 after 30 warm-up iterations
    .venv/bin/python bench/retell_llm.py --n 1000

Results go to bench/results/retell_llm.json (--out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from voice import REPLY, InstantOpenAi, machine_info, percentile, text_deltas, tool_call_deltas
from voxline.llm.interfaces import LlmEnded, LlmEvent, ResponseChunk
from voxline.llm.openai_chat import ChatRequest, OpenAiChat, StreamDone, TextDelta
from voxline.llm.retell_llm import RetellLlmEngine, RetellLlmOptions
from voxline.net.egress import GuardedTransport

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "retell_llm.json"
TOOL_BODY = b'{"available": true, "slots": ["19:30", "20:00", "20:15"], "table": "window"}'
CALL = {"call_id": "call_bench", "agent_id": "agent_bench", "call_type": "web_call", "call_status": "ongoing"}
MEASURES = (
    "floor_min",
    "engine_min",
    "floor",
    "floor_done",
    "engine",
    "tool_leg",
    "tool_http",
    "continuation",
    "engine_tool",
)

# --- the Retell LLM and the conversation -------------------------------------------------------------

GENERAL_PROMPT = (
    "You are Ava, the phone assistant of {{restaurant}}, a bistro in {{city}}. You are talking to "
    "{{user_name}} on {{current_time}}. Keep every answer to one or two short spoken sentences, no lists, "
    "no markdown, no emojis. Never invent availability: check it with the tools. Prices: set menu 42 euros, "
    "wine pairing 28 euros. Opening hours: Tuesday to Sunday, 12:00-14:30 and 19:00-22:30; closed on Mondays. "
    "Groups above eight people must be transferred to the front desk. If the caller asks something you "
    "cannot answer, say so and offer to take a message."
)
UTTERANCES = (
    ("Hi, I'd like to book a table please.", "Of course. For how many people, and for which day?"),
    ("For four people, this Saturday.", "Lovely. Lunch or dinner on Saturday?"),
    ("Dinner, around eight if possible.", "Let me see. Do you have any seating preference?"),
    ("A window table would be nice.", "Noted, a window table. May I have a name for the booking?"),
    ("It's under Martin. Ada Martin.", "Thank you, Ms Martin. Any dietary requirements in your party?"),
    ("One of us is vegetarian.", "No problem, our set menu has a vegetarian version."),
    ("How much is the set menu again?", "It is 42 euros per person, and 28 more with the wine pairing."),
    ("Great. And is there parking nearby?", "Yes, there is a public car park two minutes away on Rue Haute."),
    ("Perfect, thanks.", "You're welcome. Shall I check the table for Saturday at eight now?"),
    ("Yes, is there a table for four at eight on Saturday?", ""),
)


def custom_tool(name: str, url: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "custom",
        "name": name,
        "url": url,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": list(properties)[:1]},
        "speak_after_execution": True,
        "speak_during_execution": False,
        "timeout_ms": 10_000,
    }


def bench_llm(tool_url: str) -> dict[str, Any]:
    """3 states; in `booking` the model sees 4 tools and one transition."""
    availability = custom_tool(
        "check_availability",
        tool_url + "/availability",
        "Check whether {{restaurant}} has a free table for the party size and time.",
        {
            "party_size": {"type": "integer", "description": "Number of guests."},
            "date": {"type": "string", "description": "Date, YYYY-MM-DD."},
            "time": {"type": "string", "description": "Time, HH:MM, 24 h."},
            "restaurant_id": {"type": "string", "const": "{{restaurant_id}}"},
        },
    )
    lookup = custom_tool(
        "lookup_booking",
        tool_url + "/lookup",
        "Find an existing booking by the guest's name.",
        {"name": {"type": "string", "description": "The guest's full name."}},
    )
    note = {
        "type": "extract_dynamic_variable",
        "name": "note_details",
        "description": "Record the booking details the caller gave.",
        "variables": [
            {"type": "string", "name": "guest_name", "description": "The guest's name."},
            {"type": "number", "name": "party_size", "description": "How many guests."},
            {
                "type": "enum",
                "name": "seating",
                "description": "Seating wish.",
                "choices": ["window", "terrace", "any"],
            },
            {"type": "boolean", "name": "vegetarian", "description": "Whether a guest is vegetarian."},
        ],
    }
    return {
        "begin_message": "",
        "start_speaker": "user",
        "model": "gpt-4.1",
        "model_temperature": 0.2,
        "general_prompt": GENERAL_PROMPT,
        "default_dynamic_variables": {
            "restaurant": "Chez Voxline",
            "city": "Lyon",
            "user_name": "a guest",
            "restaurant_id": "rest_0042",
        },
        "general_tools": [
            {"type": "end_call", "name": "end_call", "description": "Hang up when the caller is done."},
            lookup,
        ],
        "states": [
            {
                "name": "greeting",
                "state_prompt": "Greet {{user_name}} and find out what they need.",
                "edges": [{"destination_state_name": "booking", "description": "The caller wants to book a table."}],
            },
            {
                "name": "booking",
                "state_prompt": (
                    "Collect party size, date, time and seating wish, note them with note_details, then check "
                    "availability before confirming anything. The booking is for {{restaurant}}."
                ),
                "tools": [note, availability],
                "edges": [
                    {
                        "destination_state_name": "wrap_up",
                        "description": "The booking is confirmed or the caller gave up.",
                        "parameters": {"type": "object", "properties": {"confirmed": {"type": "boolean"}}},
                    }
                ],
            },
            {
                "name": "wrap_up",
                "state_prompt": "Summarise the booking in one sentence and say goodbye.",
                "tools": [
                    {
                        "type": "transfer_call",
                        "name": "to_front_desk",
                        "transfer_destination": {"type": "predefined", "number": "+33472000000"},
                    }
                ],
            },
        ],
        "starting_state": "booking",
    }


def minimal_llm() -> dict[str, Any]:
    return {"begin_message": "", "start_speaker": "user", "general_prompt": "You are a helpful assistant."}


def words(text: str, start: float) -> list[dict[str, Any]]:
    return [
        {"word": w, "start": round(start + 0.3 * i, 2), "end": round(start + 0.3 * i + 0.25, 2)}
        for i, w in enumerate(text.split())
    ]


def history_10_turns() -> list[dict[str, Any]]:
    """10 user and 9 agent utterances, ending with the user (agent turns carry response ids 1-9)."""
    history: list[dict[str, Any]] = []
    at = 0.5
    for i, (said, answer) in enumerate(UTTERANCES, start=1):
        history.append({"role": "user", "content": said, "words": words(said, at)})
        at += 0.3 * len(said.split()) + 0.8
        if answer:
            history.append(
                {"role": "agent", "content": answer, "words": words(answer, at), "metadata": {"response_id": i}}
            )
            at += 0.3 * len(answer.split()) + 0.6
    return history


# --- providers and the engine ---------------------------------------------------------------------------


class Provider:
    """The instant provider's answers: text, or (mode "tool") a check_availability call while the
    last message is the user's. Keeps the last request body of each kind."""

    def __init__(self) -> None:
        self.mode = "text"
        self.bodies: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def __call__(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        last = (body.get("messages") or [{}])[-1]
        if self.mode == "tool" and last.get("role") == "user":
            self.bodies["tool_call"] = body
            arguments = {"party_size": 4, "date": "2026-11-28", "time": "20:00"}
            return tool_call_deltas("check_availability", arguments, f"call_bench{next(self._ids):06d}")
        self.bodies["after_tool" if last.get("role") == "tool" else self.mode] = body
        return text_deltas(REPLY)


class ToolServer:
    """The custom tool's endpoint: TOOL_BODY for every request; keeps the last request body."""

    def __init__(self) -> None:
        self.last: bytes = b""

    def __call__(self, _path: str, body: bytes) -> bytes:
        self.last = body
        return TOOL_BODY


class Driver:
    """One engine (one call), read the way the conversation engine reads it: `events()`."""

    def __init__(self, engine: RetellLlmEngine) -> None:
        self.engine = engine
        self.events: AsyncIterator[LlmEvent] = engine.events()

    async def start(self) -> None:
        await self.engine.start(dict(CALL))
        await self.reply_to(0)  # start_speaker user, empty begin message: one empty, complete chunk

    async def reply_to(self, response_id: int, started: float = 0.0) -> float | None:
        """Read events until response `response_id` is complete; seconds from `started` to its first text."""
        first: float | None = None
        while True:
            event = await anext(self.events)
            if isinstance(event, LlmEnded):
                raise RuntimeError(f"the engine ended: {event.reason} {event.detail}")
            if isinstance(event, ResponseChunk) and event.response_id == response_id:
                if event.content and first is None:
                    first = time.perf_counter() - started
                if event.content_complete:
                    return first

    async def first_text(self, response_id: int, history: list[dict[str, Any]]) -> float:
        started = time.perf_counter()
        await self.engine.request_response(response_id, history, transcript_with_tool_calls=history)
        first = await self.reply_to(response_id, started)
        if first is None:
            raise RuntimeError(f"response {response_id} had no text")
        return first


def chat_request(body: dict[str, Any]) -> ChatRequest:
    return ChatRequest(
        model=body["model"], messages=body["messages"], tools=body.get("tools"), temperature=body.get("temperature")
    )


async def stream_time(chat: OpenAiChat, request: ChatRequest, *, until_done: bool = False) -> float:
    """Seconds to the first TextDelta (or to StreamDone); the stream is always read to its end."""
    started = time.perf_counter()
    at: float | None = None
    async with contextlib.aclosing(chat.stream(request)) as stream:
        async for event in stream:
            if at is None and (isinstance(event, StreamDone) if until_done else isinstance(event, TextDelta)):
                at = time.perf_counter() - started
    if at is None:
        raise RuntimeError("the stream produced no text")
    return at


async def post_time(http: httpx.AsyncClient, url: str, body: bytes) -> float:
    started = time.perf_counter()
    reply = await http.post(url, content=body, headers={"Content-Type": "application/json"})
    await reply.aread()
    reply.raise_for_status()
    return time.perf_counter() - started


# --- the benchmark ------------------------------------------------------------------------------------------


def stats_ms(values: Sequence[float]) -> dict[str, float | int | None]:
    def ms(x: float | None) -> float | None:
        return None if x is None else round(1000 * x, 3)

    return {
        "n": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "max_ms": ms(max(values, default=None)),
        "min_ms": ms(min(values, default=None)),
        "mean_ms": ms(statistics.fmean(values) if values else None),
    }


def build_cost_us(engine: RetellLlmEngine, history: list[dict[str, Any]], repeat: int = 2000) -> float:
    """Mean CPU µs to build one request (system prompt, messages, visible tools, ChatRequest), no I/O."""
    started = time.perf_counter()
    for _ in range(repeat):
        engine._chat_request(engine._messages(history, False), engine._tools())
    return 1e6 * (time.perf_counter() - started) / repeat


async def run(args: argparse.Namespace) -> dict[str, Any]:
    provider, tool_server = Provider(), ToolServer()
    llm_server, tools = InstantOpenAi(respond=provider), InstantOpenAi(other=tool_server)
    await llm_server.start()
    await tools.start()
    tool_url = f"http://127.0.0.1:{tools.port}/tools"
    chat = OpenAiChat(llm_server.base_url, None, first_token_timeout_s=8, idle_timeout_s=8)
    guarded = httpx.AsyncClient(transport=GuardedTransport(allow_private=True), trust_env=False, follow_redirects=False)
    plain = httpx.AsyncClient()
    options = RetellLlmOptions(
        chat=chat, http=guarded, signing_key="key_bench", allow_private_tool_urls=True, default_model="bench-instant"
    )
    full = Driver(RetellLlmEngine(bench_llm(tool_url), "call_bench", options))
    small = Driver(RetellLlmEngine(minimal_llm(), "call_bench_min", options))
    history = history_10_turns()
    one_turn = [history[0]]
    response_ids = itertools.count(100)
    try:
        await full.start()
        await small.start()

        def engine_text() -> Awaitable[float]:
            provider.mode = "text"
            return full.first_text(next(response_ids), history)

        def engine_min() -> Awaitable[float]:
            provider.mode = "min"
            return small.first_text(next(response_ids), one_turn)

        def engine_tool() -> Awaitable[float]:
            provider.mode = "tool"
            return full.first_text(next(response_ids), history)

        for _ in range(args.warmup):  # also captures the bodies the floors replay
            await engine_text()
            await engine_min()
            await engine_tool()
        floor_min_request = ChatRequest(model="bench-instant", messages=[{"role": "user", "content": "Hi"}])
        floor_request = chat_request(provider.bodies["text"])
        leg_request = chat_request(provider.bodies["tool_call"])
        continuation_request = chat_request(provider.bodies["after_tool"])
        tool_body = tool_server.last

        def floor(request: ChatRequest, mode: str = "text", until_done: bool = False) -> Awaitable[float]:
            provider.mode = mode
            return stream_time(chat, request, until_done=until_done)

        measures: dict[str, Callable[[], Awaitable[float]]] = {
            "floor_min": lambda: floor(floor_min_request),
            "engine_min": engine_min,
            "floor": lambda: floor(floor_request),
            "floor_done": lambda: floor(floor_request, until_done=True),
            "engine": engine_text,
            "tool_leg": lambda: floor(leg_request, "tool", until_done=True),
            "tool_http": lambda: post_time(plain, tool_url + "/availability", tool_body),
            "continuation": lambda: floor(continuation_request, "tool"),
            "engine_tool": engine_tool,
        }
        for name in measures:  # warm the floors' code paths too
            for _ in range(args.warmup):
                await measures[name]()
        samples: dict[str, list[float]] = {name: [] for name in MEASURES}
        for _ in range(args.n):
            for name in MEASURES:
                samples[name].append(await measures[name]())
        provider.mode = "text"
        build_us = build_cost_us(full.engine, history)
        sizes = {
            "engine_request_bytes": len(json.dumps(provider.bodies["text"])),
            "engine_request_messages": len(provider.bodies["text"]["messages"]),
            "engine_request_tools": [t["function"]["name"] for t in provider.bodies["text"].get("tools") or []],
            "tool_request_bytes": len(tool_body),
            "continuation_request_messages": len(provider.bodies["after_tool"]["messages"]),
        }
    finally:
        await full.engine.close()
        await small.engine.close()
        await chat.aclose()
        await guarded.aclose()
        await plain.aclose()
        await llm_server.close()
        await tools.close()
    connections = {"provider": llm_server.connections, "tool_server": tools.connections}
    return {
        "samples": samples,
        "build_us": build_us,
        "sizes": sizes,
        "provider_requests": llm_server.requests,
        "connections": connections,
    }


def overheads(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    def diff(key: str, engine: str, floors: Sequence[str]) -> float:
        return round(results[engine][key] - sum(results[f][key] for f in floors), 3)

    pairs = {
        "engine - floor": ("engine", ("floor",)),
        "engine - floor_done": ("engine", ("floor_done",)),
        "engine_min - floor_min": ("engine_min", ("floor_min",)),
        "engine_tool - (tool_leg + tool_http + continuation)": (
            "engine_tool",
            ("tool_leg", "tool_http", "continuation"),
        ),
    }
    return {label: {"p50_ms": diff("p50_ms", e, f), "p95_ms": diff("p95_ms", e, f)} for label, (e, f) in pairs.items()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="measured iterations of each measure (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up iterations (default 30)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    raw = asyncio.run(run(args))
    results = {name: stats_ms(values) for name, values in raw["samples"].items()}
    over = overheads(results)
    print(f"N={args.n} after {args.warmup} warm-up iterations; ms (nearest-rank percentiles)")
    print(f"  {'measure':<14} {'p50':>8} {'p95':>8} {'max':>8} {'min':>8} {'mean':>8}")
    for name, r in results.items():
        print(
            f"  {name:<14} {r['p50_ms']:8.3f} {r['p95_ms']:8.3f} {r['max_ms']:8.3f} {r['min_ms']:8.3f} "
            f"{r['mean_ms']:8.3f}"
        )
    print("engine overhead over the floor (ms):")
    for label, o in over.items():
        print(f"  {label:<52} p50 {o['p50_ms']:7.3f}  p95 {o['p95_ms']:7.3f}")
    print(f"building one request (prompt, 19-utterance history, tools), CPU: {raw['build_us']:.1f} µs")
    print(f"sizes: {raw['sizes']}")
    print(f"provider requests {raw['provider_requests']}, TCP connections accepted {raw['connections']}")
    result = {
        "benchmark": "voxline built-in LLM engine (bench/retell_llm.py)",
        "started_at": started,
        "machine": info,
        "parameters": {"n": args.n, "warmup": args.warmup},
        "method": {
            "provider": "bench/voice.py InstantOpenAi on loopback, same process and event loop; SSE: role delta, "
            f"4 content deltas of {REPLY!r}, finish_reason stop, [DONE]",
            "engine": "RetellLlmEngine driven directly; time from request_response to the first ResponseChunk "
            "with text read from events()",
            "llm": "3 states, starting state booking: end_call, lookup_booking (custom), note_details "
            "(extract_dynamic_variable), check_availability (custom) + transition_to_wrap_up; 10-turn history",
            "order": "each iteration runs every measure once, in the order of `results`",
        },
        "results": results,
        "overhead_ms": over,
        "build_request_cpu_us": round(raw["build_us"], 1),
        "sizes": raw["sizes"],
        "provider_requests": raw["provider_requests"],
        "tcp_connections_accepted": raw["connections"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
