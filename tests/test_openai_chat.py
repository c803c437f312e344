"""The OpenAI-compatible Chat Completions client against a real fake server on loopback.

Covers streaming text and tool calls, the wire quirks of vLLM / llama.cpp / Ollama, every
`ProviderError` kind, the timeouts (with small values, so the tests stay fast), early close, and
`complete()`. The last section checks the fake itself where these tests rely on it.
"""

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.openai_fake import (
    FakeOpenAi,
    Reply,
    chunk,
    die,
    first_byte_delay,
    garbage,
    http_error,
    raw_sse,
    stall,
    text,
    tool_call,
    tool_calls,
    usage_chunk,
)
from voxline.llm.openai_chat import (
    ChatEvent,
    ChatRequest,
    OpenAiChat,
    ProviderError,
    StreamDone,
    TextDelta,
    ToolCallRequest,
)

HELLO = ChatRequest(model="fake-model", messages=[{"role": "user", "content": "Hi"}])
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FAST = {"first_token_timeout_s": 0.3, "idle_timeout_s": 0.3}


@pytest.fixture
def fake() -> Iterator[FakeOpenAi]:
    with FakeOpenAi() as server:
        yield server


@contextlib.asynccontextmanager
async def client_for(base_url: str, api_key: str | None = "sk-test", **options: Any) -> AsyncIterator[OpenAiChat]:
    chat = OpenAiChat(base_url, api_key, **options)
    try:
        yield chat
    finally:
        await chat.aclose()


async def collect(fake: FakeOpenAi, reply: Reply, request: ChatRequest = HELLO, **options: Any) -> list[ChatEvent]:
    """Every event of one stream answered with `reply`."""
    fake.respond(lambda body: reply)
    async with client_for(fake.base_url, **options) as chat:
        return [event async for event in chat.stream(request)]


async def failure(fake: FakeOpenAi, reply: Reply, **options: Any) -> ProviderError:
    fake.respond(lambda body: reply)
    async with client_for(fake.base_url, **options) as chat:
        with pytest.raises(ProviderError) as caught:
            async for _ in chat.stream(HELLO):
                pass
    return caught.value


def texts(events: list[ChatEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


def done(events: list[ChatEvent]) -> StreamDone:
    assert isinstance(events[-1], StreamDone)
    assert sum(isinstance(e, StreamDone) for e in events) == 1
    return events[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- streamed text ---------------------------------------------------------------------------------
async def test_text_arrives_in_deltas_before_the_server_sends_the_rest(fake: FakeOpenAi) -> None:
    gate = threading.Event()
    fake.respond(lambda body: text("Hello there. How can I help?", gate=gate))
    async with client_for(fake.base_url) as chat:
        stream = chat.stream(HELLO)
        first = await anext(stream)
        assert first == TextDelta("Hello ")
        assert not fake.exchanges[0].finished.is_set()  # the server is still holding back the last piece
        gate.set()
        rest = [event async for event in stream]
    events = [first, *rest]
    assert texts(events) == ["Hello ", "there. ", "How ", "can ", "I ", "help?"]
    assert done(events) == StreamDone("stop", ())


async def test_request_body_and_headers(fake: FakeOpenAi) -> None:
    request = ChatRequest(
        model="llama-3",
        messages=[{"role": "user", "content": "Hi"}],
        tools=[WEATHER_TOOL],
        temperature=0.2,
        max_tokens=50,
    )
    fake.respond(lambda body: text("OK."))
    async with client_for(fake.base_url, api_key="sk-secret", extra_headers={"X-Trace": "abc"}) as chat:
        [_ async for _ in chat.stream(request)]
    body, headers = fake.requests[0], fake.headers[0]
    assert body == {
        "model": "llama-3",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "tools": [WEATHER_TOOL],
        "temperature": 0.2,
        "max_tokens": 50,
    }
    assert headers["authorization"] == "Bearer sk-secret"
    assert headers["x-trace"] == "abc"
    assert headers["accept"] == "text/event-stream"
    assert fake.exchanges[0].path == "/v1/chat/completions"


async def test_optional_fields_and_authorization_are_left_out(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: text("OK."))
    async with client_for(fake.base_url, api_key=None) as chat:
        [_ async for _ in chat.stream(HELLO)]
    assert set(fake.requests[0]) == {"model", "messages", "stream"}
    assert "authorization" not in fake.headers[0]


async def test_base_url_with_trailing_slash(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: text("OK."))
    async with client_for(fake.base_url + "/") as chat:
        events = [e async for e in chat.stream(HELLO)]
    assert texts(events) == ["OK."]
    assert fake.exchanges[0].path == "/v1/chat/completions"


# -- tool calls ------------------------------------------------------------------------------------
async def test_tool_call_split_across_chunks_is_assembled(fake: FakeOpenAi) -> None:
    events = await collect(fake, tool_call("get_weather", {"city": "Paris"}, id="call_1", split=3))
    assert texts(events) == []
    assert done(events) == StreamDone("tool_calls", (ToolCallRequest("call_1", "get_weather", '{"city": "Paris"}'),))


async def test_fake_splits_tool_call_arguments_with_id_and_name_only_first(fake: FakeOpenAi) -> None:
    deltas = [_tool_delta(line) for line in _sse_lines(fake, tool_call("f", {"a": 1}, id="c9", split=3))]
    deltas = [d for d in deltas if d is not None]
    assert len(deltas) == 3
    assert deltas[0]["id"] == "c9" and deltas[0]["function"]["name"] == "f"
    assert all("id" not in d and "name" not in d["function"] for d in deltas[1:])
    assert "".join(d["function"]["arguments"] for d in deltas) == '{"a": 1}'


async def test_several_tool_calls_in_index_order(fake: FakeOpenAi) -> None:
    reply = tool_calls(
        [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {"tz": "CET"}}],
        split=2,
    )
    assert done(await collect(fake, reply)).tool_calls == (
        ToolCallRequest("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCallRequest("call_2", "get_time", '{"tz": "CET"}'),
    )


async def test_text_then_tool_call(fake: FakeOpenAi) -> None:
    reply = tool_call("get_weather", {"city": "Paris"}, id="call_x", text_before="Let me check.")
    events = await collect(fake, reply)
    assert "".join(texts(events)) == "Let me check."
    assert isinstance(events[0], TextDelta)
    assert done(events).tool_calls == (ToolCallRequest("call_x", "get_weather", '{"city": "Paris"}'),)


async def test_interleaved_fragments_and_missing_id(fake: FakeOpenAi) -> None:
    reply = raw_sse(
        chunk({"tool_calls": [{"index": 1, "type": "function", "function": {"name": "b", "arguments": '{"y"'}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "a", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": ": 2}"}}]}),
        chunk({}, "tool_calls"),
        "data: [DONE]",
    )
    calls = done(await collect(fake, reply)).tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("a", "{}"), ("b", '{"y": 2}')]
    assert calls[0].id == "call_a"
    assert calls[1].id.startswith("call_") and len(calls[1].id) > len("call_")


async def test_ollama_style_tool_calls(fake: FakeOpenAi) -> None:
    """Whole arguments in one chunk, every call at index 0 (or no index), each with its own id."""
    reply = raw_sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [{"index": 0, "id": "o1", "function": {"name": "f", "arguments": '{"n": 1}'}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "o2", "function": {"name": "f", "arguments": '{"n": 2}'}}]}),
        chunk({"tool_calls": [{"id": "o3", "function": {"name": "g", "arguments": {"n": 3}}}]}),
        chunk({}, "stop"),
        "data: [DONE]",
    )
    assert done(await collect(fake, reply)) == StreamDone(
        "stop",
        (
            ToolCallRequest("o1", "f", '{"n": 1}'),
            ToolCallRequest("o2", "f", '{"n": 2}'),
            ToolCallRequest("o3", "g", '{"n": 3}'),
        ),
    )


# -- wire quirks -----------------------------------------------------------------------------------
async def test_usage_chunks_keepalives_and_other_sse_fields_are_ignored(fake: FakeOpenAi) -> None:
    reply = raw_sse(
        ": keep-alive",
        "",
        "event: message",
        "id: 1",
        chunk({"role": "assistant"}),
        "",
        chunk({"content": ""}),
        chunk({"content": None}),
        "data:" + chunk({"content": "Hi"})[len("data: ") :],  # no space after the colon
        "",
        ": OPENROUTER PROCESSING",
        chunk({"content": " there"}) + "\r",  # a CRLF line ending
        chunk({}, "stop"),
        usage_chunk(),
        "data: [DONE]",
        "",
    )
    events = await collect(fake, reply)
    assert texts(events) == ["Hi", " there"]
    assert done(events) == StreamDone("stop", ())


async def test_finish_reason_without_done_is_accepted(fake: FakeOpenAi) -> None:
    reply = raw_sse(chunk({"content": "Cut short"}), chunk({}, "length"))
    events = await collect(fake, reply)
    assert texts(events) == ["Cut short"]
    assert done(events) == StreamDone("length", ())


async def test_done_without_finish_reason_is_accepted(fake: FakeOpenAi) -> None:
    events = await collect(fake, raw_sse(chunk({"content": "Hi"}), "data: [DONE]"))
    assert done(events) == StreamDone(None, ())


# -- provider errors -------------------------------------------------------------------------------
async def test_connect_failure() -> None:
    async with client_for(f"http://127.0.0.1:{free_port()}/v1", connect_timeout_s=1.0) as chat:
        with pytest.raises(ProviderError) as caught:
            [_ async for _ in chat.stream(HELLO)]
    assert caught.value.kind == "connect"
    assert caught.value.retryable
    assert "could not connect" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (429, True), (500, True), (503, True)],
)
async def test_http_error(fake: FakeOpenAi, status: int, retryable: bool) -> None:
    error = await failure(fake, http_error(status, "overloaded right now"))
    assert (error.kind, error.status, error.retryable) == ("http", status, retryable)
    assert str(error) == f"LLM provider returned HTTP {status}: overloaded right now"


async def test_http_error_with_a_non_json_body(fake: FakeOpenAi) -> None:
    page = b"<html><body>" + b"Bad gateway " * 100 + b"</body></html>"
    error = await failure(fake, Reply(status=502, non_streaming_body=page))
    assert (error.kind, error.status, error.retryable) == ("http", 502, True)
    assert "<html><body>Bad gateway" in str(error)
    assert len(str(error)) < 400 and "\n" not in str(error)


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (garbage(), "not JSON: 'not json'"),
        (raw_sse("data: [1, 2]"), "expected a JSON object"),
        (raw_sse('data: {"choices": "nope"}'), "'choices' is not a list"),
        (raw_sse(chunk({"content": 5})), "'content' is not a string"),
        (
            raw_sse(chunk({"tool_calls": [{"index": 0, "arguments": "{}"}]}), chunk({}, "tool_calls")),
            "no function name",
        ),
        (raw_sse(chunk({"content": "Hel"}), 'data: {"error": {"message": "model crashed"}}'), "model crashed"),
        (raw_sse('data: {"object": "error", "message": "vllm failed", "code": 500}'), "vllm failed"),
        (raw_sse('{"error": {"message": "not sse"}}'), "not an SSE line"),
    ],
)
async def test_garbage(fake: FakeOpenAi, reply: Reply, detail: str) -> None:
    error = await failure(fake, reply)
    assert (error.kind, error.retryable) == ("garbage", True)
    assert detail in str(error)


@pytest.mark.parametrize("clean", [False, True])
async def test_body_ending_without_done_or_finish_reason(fake: FakeOpenAi, clean: bool) -> None:
    fake.respond(lambda body: die(after_text="Hello", clean=clean))
    received: list[ChatEvent] = []
    async with client_for(fake.base_url) as chat:
        with pytest.raises(ProviderError) as caught:
            async for event in chat.stream(HELLO):
                received.append(event)
    assert received == [TextDelta("Hello")]
    assert (caught.value.kind, caught.value.retryable) == ("stream_ended", True)


async def test_first_token_timeout(fake: FakeOpenAi) -> None:
    started = time.monotonic()
    error = await failure(fake, first_byte_delay(10, text("Too late")), **FAST)
    assert time.monotonic() - started < 2
    assert (error.kind, error.retryable) == ("timeout", True)
    assert "0.3 s" in str(error)
    assert fake.exchanges[0].client_gone.wait(2)


async def test_keepalive_comments_do_not_count_as_a_first_token(fake: FakeOpenAi) -> None:
    started = time.monotonic()
    error = await failure(fake, raw_sse(*[": ping", 0.05] * 40, chunk({"content": "late"})), **FAST)
    assert error.kind == "timeout"
    assert time.monotonic() - started < 2


async def test_idle_stall(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: stall(after_text="Hel", seconds=30))
    received: list[ChatEvent] = []
    started = time.monotonic()
    async with client_for(fake.base_url, **FAST) as chat:
        with pytest.raises(ProviderError) as caught:
            async for event in chat.stream(HELLO):
                received.append(event)
    assert time.monotonic() - started < 2
    assert received == [TextDelta("Hel")]
    assert (caught.value.kind, caught.value.retryable) == ("stalled", True)
    assert fake.exchanges[0].client_gone.wait(2)


async def test_slow_consumer_is_not_a_stall(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: text("one two three"))
    received: list[str] = []
    async with client_for(fake.base_url, **FAST) as chat:
        async for event in chat.stream(HELLO):
            if isinstance(event, TextDelta):
                received.append(event.text)
                await asyncio.sleep(0.4)
    assert received == ["one ", "two ", "three"]


async def test_total_timeout(fake: FakeOpenAi) -> None:
    trickle = raw_sse(*[item for i in range(50) for item in (chunk({"content": f"{i} "}), 0.05)])
    started = time.monotonic()
    error = await failure(fake, trickle, total_timeout_s=0.5, **FAST)
    assert time.monotonic() - started < 2
    assert error.kind == "timeout"
    assert "0.5 s" in str(error)


def test_retryable_by_kind_and_status() -> None:
    for kind in ("connect", "timeout", "stalled", "garbage", "stream_ended"):
        assert ProviderError(kind, "x").retryable  # type: ignore[arg-type]
    assert ProviderError("http", "x", status=409).retryable
    assert ProviderError("http", "x", status=599).retryable
    assert not ProviderError("http", "x", status=422).retryable


# -- closing early ---------------------------------------------------------------------------------
async def test_aclose_closes_the_server_side_connection(fake: FakeOpenAi) -> None:
    gate = threading.Event()  # never set: the server would hold the last piece for 30 s
    fake.respond(lambda body: text("Hello there. How can I help?", gate=gate))
    async with client_for(fake.base_url) as chat:
        stream = chat.stream(HELLO)
        assert await anext(stream) == TextDelta("Hello ")
        await stream.aclose()
        assert await asyncio.to_thread(fake.exchanges[0].client_gone.wait, 2)


async def test_break_inside_aclosing_closes_the_connection(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: stall(after_text="Hel", seconds=30))
    async with client_for(fake.base_url) as chat:
        async with contextlib.aclosing(chat.stream(HELLO)) as stream:
            async for _ in stream:
                break
        assert await asyncio.to_thread(fake.exchanges[0].client_gone.wait, 2)


async def test_shared_client_is_not_closed() -> None:
    async with httpx.AsyncClient() as shared:
        chat = OpenAiChat("http://127.0.0.1:9/v1", None, client=shared)
        await chat.aclose()
        assert not shared.is_closed


# -- complete() ------------------------------------------------------------------------------------
async def test_complete_returns_the_whole_text(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: text("Hello there. How can I help?"))
    async with client_for(fake.base_url) as chat:
        assert await chat.complete(HELLO) == "Hello there. How can I help?"
    assert fake.requests[0]["stream"] is False
    assert fake.headers[0]["authorization"] == "Bearer sk-test"


async def test_complete_with_only_a_tool_call_returns_empty_text(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: tool_call("get_weather", {"city": "Paris"}))
    async with client_for(fake.base_url) as chat:
        assert await chat.complete(HELLO) == ""


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (http_error(429, "slow down"), "http"),
        (garbage(), "garbage"),
        (Reply(non_streaming_body=b'{"choices": []}'), "garbage"),
        (die(), "stream_ended"),
        (first_byte_delay(10, text("late")), "timeout"),
        (stall(seconds=10), "timeout"),
    ],
)
async def test_complete_errors(fake: FakeOpenAi, reply: Reply, kind: str) -> None:
    fake.respond(lambda body: reply)
    async with client_for(fake.base_url, total_timeout_s=0.3) as chat:
        with pytest.raises(ProviderError) as caught:
            await chat.complete(HELLO)
    assert caught.value.kind == kind


async def test_complete_connect_failure() -> None:
    async with client_for(f"http://127.0.0.1:{free_port()}/v1") as chat:
        with pytest.raises(ProviderError) as caught:
            await chat.complete(HELLO)
    assert caught.value.kind == "connect"


# -- the fake itself -------------------------------------------------------------------------------
def _sse_lines(fake: FakeOpenAi, reply: Reply) -> list[str]:
    fake.respond(lambda body: reply)
    with httpx.Client() as client:
        response = client.post(fake.base_url + "/chat/completions", json={"model": "m", "messages": [], "stream": True})
        assert response.headers["content-type"] == "text/event-stream"
        return [line for line in response.text.split("\n") if line.startswith("data: ")]


def _tool_delta(line: str) -> dict[str, Any] | None:
    if line == "data: [DONE]":
        return None
    calls = json.loads(line[len("data: ") :])["choices"][0]["delta"].get("tool_calls")
    return calls[0] if calls else None


def test_fake_streams_openai_shaped_chunks(fake: FakeOpenAi) -> None:
    lines = _sse_lines(fake, text("Hello there."))
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["Hello ", "there."]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_fake_default_reply_and_non_streaming_tool_calls(fake: FakeOpenAi) -> None:
    with httpx.Client() as client:
        url = fake.base_url + "/chat/completions"
        answer = client.post(url, json={"model": "m", "messages": []}).json()
        assert answer["choices"][0]["message"] == {"role": "assistant", "content": "OK."}
        fake.respond(lambda body: tool_call("get_weather", {"city": "Paris"}, id="call_7"))
        message = client.post(url, json={"model": "m", "messages": []}).json()["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
    assert len(fake.requests) == 2


def test_fake_handler_error_becomes_500_and_is_recorded(fake: FakeOpenAi) -> None:
    def broken(body: dict[str, Any]) -> Reply:
        raise KeyError("no script for this turn")

    fake.respond(broken)
    with httpx.Client() as client:
        response = client.post(fake.base_url + "/chat/completions", json={"model": "m", "messages": []})
    assert response.status_code == 500
    assert "no script for this turn" in response.json()["error"]["message"]
    assert len(fake.errors) == 1 and isinstance(fake.errors[0], KeyError)


def test_fake_die_drops_the_connection_mid_body(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: die(after_text="Hello"))
    with httpx.Client() as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(fake.base_url + "/chat/completions", json={"model": "m", "messages": [], "stream": True})
    assert fake.exchanges[0].finished.wait(2)


def test_fake_records_requests_from_another_thread_and_lists_models(fake: FakeOpenAi) -> None:
    with httpx.Client() as client:
        assert client.get(fake.base_url + "/models").json()["data"][0]["id"] == "fake-model"
        client.post(fake.base_url + "/chat/completions", json={"model": "m", "messages": [{"role": "user"}]})
    exchange = fake.wait_for_requests(1)[0]
    assert exchange.finished.wait(5) and not exchange.client_gone.is_set()
    assert fake.requests == [{"model": "m", "messages": [{"role": "user"}]}]


def test_fake_serves_another_process(fake: FakeOpenAi) -> None:
    fake.respond(lambda body: text("From afar."))
    script = (
        "import httpx, sys; "
        "r = httpx.post(sys.argv[1] + '/chat/completions', json={'model': 'm', 'messages': []}); "
        "print(r.json()['choices'][0]['message']['content'])"
    )
    result = subprocess.run([sys.executable, "-c", script, fake.base_url], capture_output=True, text=True, timeout=20)
    assert result.stdout.strip() == "From afar.", result.stderr
