"""A fake OpenAI Chat Completions server on loopback, scriptable per request.

`FakeOpenAi` is a real HTTP/1.1 server (asyncio streams, one background thread with its own event
loop), so it serves sync tests, async tests and a Voxline server subprocess alike:

    with FakeOpenAi() as fake:                      # or fake = FakeOpenAi().start(); ...; fake.close()
        fake.respond(lambda body: text("Hello there. How can I help?"))
        ... point the client at fake.base_url ("http://127.0.0.1:<port>/v1") ...
        assert fake.requests[0]["messages"][-1]["content"] == "Hi"

Routes: `POST /v1/chat/completions` (any path ending in `/chat/completions`) and `GET /v1/models`.
Streaming requests (`"stream": true`) get SSE over chunked transfer encoding, shaped like OpenAI's:
a role-only first delta, content deltas, a final delta with `finish_reason`, then `data: [DONE]`.
Non-streaming requests get one `chat.completion` JSON with the reply's whole text as
`choices[0].message.content` (and its tool calls as `message.tool_calls`), after the same sleeps
and gates the streamed body would have had (so `stall` delays it, `die` drops the connection).
Every response closes its connection (`Connection: close`).

The handler given to `respond` receives the request body and returns a `Reply`; the builders:

- `text(content, pieces=None, gate=None)`: content in several chunks (split after each space by
  default, or exactly `pieces`); with `gate` (a `threading.Event`) the last piece waits for it.
- `tool_call(name, arguments, id="call_1", text_before=None, split=3)`: optional text, then one
  tool call whose JSON arguments come in `split` fragments (id/type/name only on the first).
- `tool_calls([{"name", "arguments", "id"?}, ...], text_before=None, split=1)`: several calls,
  indexes 0, 1, ...; `finish_reason` "tool_calls".
- `stall(after_text="Hel", seconds=30)`: some text, then silence with the connection open.
- `die(after_text="Hello", clean=False)`: some text, then the connection drops mid-body (or, with
  `clean=True`, the body ends properly) without finish_reason or `[DONE]`.
- `garbage()`: a `data: not json` line.
- `http_error(status, message)`: an OpenAI-style JSON error body with that status.
- `first_byte_delay(seconds, reply)`: waits before sending anything of `reply`.
- `raw_sse(*items, content="")`: exact wire control: strings are written as lines (`"data: {...}"`,
  `": keep-alive"`, `""` for an event's blank line), numbers sleep that long, `threading.Event`s
  are waited for. `chunk(delta, finish_reason=None)` and `usage_chunk()` help build the strings.

With no handler the reply is `text("OK.")`. A handler that raises gets an HTTP 500 and its
exception lands in `errors`. `exchanges` records each request with what happened to it: whether
the response finished, and whether the client went away before it did (`client_gone`).
"""

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

__all__ = [
    "Exchange",
    "FakeOpenAi",
    "Reply",
    "chunk",
    "die",
    "first_byte_delay",
    "garbage",
    "http_error",
    "raw_sse",
    "stall",
    "text",
    "tool_call",
    "tool_calls",
    "usage_chunk",
]

GATE_MAX_WAIT_S = 30.0
"""A gate nobody opens is given up on after this long (the reply then ends normally)."""


# -- replies ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Write:
    data: bytes


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Wait:
    event: threading.Event


@dataclass(frozen=True)
class Drop:
    """Close the connection at once, mid-body (no terminating chunk)."""


Step = Write | Sleep | Wait | Drop


@dataclass(frozen=True)
class Reply:
    """What the fake sends for one request.

    `steps` is the streaming body (already SSE-encoded); a body that does not end with `Drop` is
    terminated properly. `content`/`tool_calls`/`finish_reason` are the non-streaming answer.
    `status` != 200 sends `error_body` as JSON for both kinds of request. `delay_s` waits before
    anything is sent; `non_streaming_body` overrides the JSON answer (or error body) with raw bytes.
    """

    steps: tuple[Step, ...] = ()
    content: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str = "stop"
    status: int = 200
    error_body: dict[str, Any] | None = None
    delay_s: float = 0.0
    non_streaming_body: bytes | None = None
    drop_non_streaming: bool = False


def chunk(delta: dict[str, Any], finish_reason: str | None = None, *, model: str = "fake-model") -> str:
    """One `data:` line of a `chat.completion.chunk` with `choices[0].delta = delta`."""
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return "data: " + json.dumps(payload)


def usage_chunk(prompt_tokens: int = 10, completion_tokens: int = 5) -> str:
    """The `stream_options.include_usage` chunk: empty `choices`, a `usage` object."""
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    return "data: " + json.dumps(payload)


def _event(line: str) -> Write:
    return Write((line + "\n\n").encode())


def _role() -> Write:
    return _event(chunk({"role": "assistant", "content": ""}))


def _finish(reason: str) -> tuple[Step, ...]:
    return (_event(chunk({}, reason)), _event("data: [DONE]"))


def _split_words(content: str) -> list[str]:
    """'Hello there. Bye' -> ['Hello ', 'there. ', 'Bye'] (joined back, they give `content`)."""
    words = content.split(" ")
    return [w + " " for w in words[:-1]] + ([words[-1]] if words[-1] else [])


def _text_steps(pieces: Sequence[str], gate: threading.Event | None = None) -> list[Step]:
    steps: list[Step] = []
    for i, piece in enumerate(pieces):
        if gate is not None and i == len(pieces) - 1:
            steps.append(Wait(gate))
        steps.append(_event(chunk({"content": piece})))
    return steps


def text(content: str, pieces: Sequence[str] | None = None, gate: threading.Event | None = None) -> Reply:
    """A streamed text reply; `pieces` (joined, they should give `content`) overrides the word split."""
    parts = list(pieces) if pieces is not None else _split_words(content)
    steps = [_role(), *_text_steps(parts, gate), *_finish("stop")]
    return Reply(tuple(steps), content="".join(parts))


def _fragments(arguments: str, split: int) -> list[str]:
    split = max(1, min(split, len(arguments) or 1))
    size = -(-len(arguments) // split) if arguments else 0
    return [arguments[i * size : (i + 1) * size] for i in range(split)] if size else [""]


def _tool_call_steps(index: int, call: dict[str, Any], split: int) -> tuple[list[Step], dict[str, Any]]:
    call_id = call.get("id") or f"call_{index + 1}"
    arguments = json.dumps(call.get("arguments", {}))
    steps: list[Step] = []
    for i, fragment in enumerate(_fragments(arguments, split)):
        delta: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
        if i == 0:
            delta = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": call["name"], **delta["function"]},
            }
        steps.append(_event(chunk({"tool_calls": [delta]})))
    whole = {"id": call_id, "type": "function", "function": {"name": call["name"], "arguments": arguments}}
    return steps, whole


def tool_calls(calls: Sequence[dict[str, Any]], text_before: str | None = None, split: int = 1) -> Reply:
    """Several tool calls (`{"name", "arguments": dict, "id"?}`; ids default to call_1, call_2...)."""
    steps: list[Step] = [_role()]
    if text_before:
        steps += _text_steps(_split_words(text_before))
    wholes = []
    for index, call in enumerate(calls):
        call_steps, whole = _tool_call_steps(index, call, split)
        steps += call_steps
        wholes.append(whole)
    steps += _finish("tool_calls")
    return Reply(tuple(steps), content=text_before or "", tool_calls=tuple(wholes), finish_reason="tool_calls")


def tool_call(
    name: str, arguments: dict[str, Any], id: str = "call_1", text_before: str | None = None, split: int = 3
) -> Reply:
    """One tool call, arguments in `split` fragments, optionally after some text."""
    return tool_calls([{"name": name, "arguments": arguments, "id": id}], text_before=text_before, split=split)


def stall(after_text: str = "Hel", seconds: float = 30.0) -> Reply:
    """Text, then `seconds` of silence on an open connection, then a proper end."""
    steps = [_role(), _event(chunk({"content": after_text})), Sleep(seconds), *_finish("stop")]
    return Reply(tuple(steps), content=after_text)


def die(after_text: str = "Hello", clean: bool = False) -> Reply:
    """Text, then the body ends without finish_reason or [DONE]: dropped (default) or cleanly."""
    steps: list[Step] = [_role(), _event(chunk({"content": after_text}))]
    if not clean:
        steps.append(Drop())
    return Reply(tuple(steps), content=after_text, drop_non_streaming=not clean)


def garbage() -> Reply:
    """A `data: not json` line (and a non-JSON body for non-streaming requests)."""
    steps = [_role(), _event("data: not json"), *_finish("stop")]
    return Reply(tuple(steps), non_streaming_body=b"not json")


def http_error(status: int, message: str, type: str = "server_error", code: str | None = None) -> Reply:
    """An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}` with `status`."""
    body = {"error": {"message": message, "type": type, "param": None, "code": code}}
    return Reply(status=status, error_body=body)


def first_byte_delay(seconds: float, reply: Reply) -> Reply:
    """`reply`, after `seconds` without sending a byte (not even the status line)."""
    return replace(reply, delay_s=reply.delay_s + seconds)


def raw_sse(*items: str | float | threading.Event, content: str = "") -> Reply:
    """Exact wire lines: str -> that line + "\\n", number -> sleep, Event -> wait for it."""
    steps: list[Step] = []
    for item in items:
        if isinstance(item, str):
            steps.append(Write((item + "\n").encode()))
        elif isinstance(item, threading.Event):
            steps.append(Wait(item))
        else:
            steps.append(Sleep(float(item)))
    return Reply(tuple(steps), content=content)


def _default_handler(body: dict[str, Any]) -> Reply:
    return text("OK.")


# -- the server ------------------------------------------------------------------------------------
@dataclass
class Exchange:
    """One request the fake received, and what became of its response."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    finished: threading.Event = field(default_factory=threading.Event)
    """Set when the fake is done with the request (response complete, dropped, or client gone)."""
    client_gone: threading.Event = field(default_factory=threading.Event)
    """Set when the client closed the connection before the response was complete."""


class _ClientGone(Exception):
    pass


class _Conn:
    """One accepted connection: writing with disconnect detection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._eof: asyncio.Task[bytes] | None = None

    def watch_eof(self) -> None:
        self._eof = asyncio.get_running_loop().create_task(self.reader.read(1))

    @property
    def gone(self) -> bool:
        return self._eof is not None and self._eof.done()

    async def write(self, data: bytes) -> None:
        if self.gone:
            raise _ClientGone
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise _ClientGone from exc

    async def sleep(self, seconds: float) -> None:
        assert self._eof is not None
        await asyncio.wait({self._eof}, timeout=seconds)
        if self.gone:
            raise _ClientGone

    async def wait(self, event: threading.Event) -> None:
        deadline = time.monotonic() + GATE_MAX_WAIT_S
        while not event.is_set() and time.monotonic() < deadline:
            await self.sleep(0.01)

    def close(self) -> None:
        if self._eof is not None:
            self._eof.cancel()
        self.writer.close()


def _status_line(status: int) -> str:
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    return f"HTTP/1.1 {status} {reasons.get(status, 'Status')}\r\n"


async def _send_json(conn: _Conn, status: int, payload: Any, raw: bytes | None = None) -> None:
    body = raw if raw is not None else json.dumps(payload).encode()
    head = _status_line(status) + "Content-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    await conn.write(head.encode() + body)


async def _send_stream(conn: _Conn, steps: Sequence[Step]) -> None:
    head = _status_line(200) + "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    await conn.write(head.encode())
    for step in steps:
        if isinstance(step, Write):
            await conn.write(b"%x\r\n%s\r\n" % (len(step.data), step.data))
        elif isinstance(step, Sleep):
            await conn.sleep(step.seconds)
        elif isinstance(step, Wait):
            await conn.wait(step.event)
        else:
            return
    await conn.write(b"0\r\n\r\n")


async def _pause_like_the_stream(conn: _Conn, steps: Sequence[Step]) -> None:
    """A non-streaming answer waits for the streaming body's sleeps and gates, then comes whole."""
    for step in steps:
        if isinstance(step, Sleep):
            await conn.sleep(step.seconds)
        elif isinstance(step, Wait):
            await conn.wait(step.event)


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.tool_calls:
        message["tool_calls"] = list(reply.tool_calls)
    elif message["content"] is None:
        message["content"] = ""
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [choice],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16):
            parts.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return b"".join(parts)
    return await reader.readexactly(int(headers.get("content-length", "0")))


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, path, headers, await _read_body(reader, headers)


class FakeOpenAi:
    """The fake server; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._handler: Callable[[dict[str, Any]], Reply] = _default_handler
        self._exchanges: list[Exchange] = []
        self._errors: list[Exception] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- scripting and observing --
    def respond(self, handler: Callable[[dict[str, Any]], Reply]) -> None:
        """Answer every following chat request with `handler(request_body)`."""
        with self._lock:
            self._handler = handler

    @property
    def exchanges(self) -> list[Exchange]:
        """Chat-completion requests received, in order (a snapshot)."""
        with self._lock:
            return list(self._exchanges)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Their JSON bodies ({} for a body that was not a JSON object)."""
        return [e.body or {} for e in self.exchanges]

    @property
    def headers(self) -> list[dict[str, str]]:
        """Their headers, names lower-cased."""
        return [e.headers for e in self.exchanges]

    @property
    def errors(self) -> list[Exception]:
        """Exceptions raised by handlers, and bad request bodies (as ValueError)."""
        with self._lock:
            return list(self._errors)

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[Exchange]:
        """Block until at least `count` chat requests arrived; returns the exchanges."""
        deadline = time.monotonic() + timeout_s
        while len(self.exchanges) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake OpenAI got {len(self.exchanges)} requests, expected {count}")
            time.sleep(0.005)
        return self.exchanges

    # -- lifecycle --
    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    def start(self) -> "FakeOpenAi":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(5) or self._server is None:
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(5)
        thread.join(5)
        self._loop = self._thread = None

    def __enter__(self) -> "FakeOpenAi":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(asyncio.start_server(self._accept, self._host, self._port))
            ready.set()
            loop.run_forever()
        finally:
            ready.set()
            loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None and self._loop is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let cancelled end-of-input watchers finish
        self._loop.call_soon(self._loop.stop)

    # -- serving --
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        conn = _Conn(reader, writer)
        try:
            await self._serve(conn)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError, _ClientGone):
            pass
        finally:
            conn.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _serve(self, conn: _Conn) -> None:
        method, path, headers, raw = await _read_request(conn.reader)
        conn.watch_eof()
        if method == "GET" and path.rstrip("/").endswith("/models"):
            await _send_json(conn, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            return
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await _send_json(conn, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})
            return
        exchange = Exchange(method, path, headers, _parse_body(raw))
        with self._lock:
            self._exchanges.append(exchange)
        try:
            await self._answer(conn, exchange)
        except _ClientGone:
            exchange.client_gone.set()
        finally:
            exchange.finished.set()

    async def _answer(self, conn: _Conn, exchange: Exchange) -> None:
        if exchange.body is None:
            self._record(ValueError(f"{exchange.path}: request body is not a JSON object"))
            await _send_json(conn, 400, {"error": {"message": "body must be a JSON object", "type": "invalid"}})
            return
        try:
            with self._lock:
                handler = self._handler
            reply = handler(exchange.body)
        except Exception as exc:
            self._record(exc)
            await _send_json(conn, 500, {"error": {"message": f"fake handler failed: {exc!r}", "type": "server"}})
            return
        await self._send_reply(conn, exchange.body, reply)

    async def _send_reply(self, conn: _Conn, body: dict[str, Any], reply: Reply) -> None:
        if reply.delay_s:
            await conn.sleep(reply.delay_s)
        if reply.status != 200:
            error = reply.error_body or {"error": {"message": "error"}}
            await _send_json(conn, reply.status, error, raw=reply.non_streaming_body)
        elif body.get("stream"):
            await _send_stream(conn, reply.steps)
        else:
            await _pause_like_the_stream(conn, reply.steps)
            if not reply.drop_non_streaming:
                await _send_json(conn, 200, _completion(body, reply), raw=reply.non_streaming_body)

    def _record(self, exc: Exception) -> None:
        with self._lock:
            self._errors.append(exc)


def _parse_body(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
