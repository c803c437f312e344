"""Streaming client for any OpenAI-compatible Chat Completions endpoint.

Used by the built-in prompt LLM engine. It speaks to OpenAI, vLLM, llama.cpp server, Ollama and
anything else that serves `POST {base_url}/chat/completions` with Server-Sent Events:

    data: {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}], ...}
    data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], ...}
    data: [DONE]

`OpenAiChat.stream` yields `TextDelta`s as content arrives and ends with exactly one `StreamDone`
carrying the assembled tool calls. Every failure becomes a `ProviderError` with a `kind` and a
one-line message fit for logs and the call's `end_detail`.

Tolerated provider differences (seen in the wild):

- a role-only first delta, `content: null` / `""`, `delta: null` on the final chunk;
- `usage` chunks with empty `choices` (OpenAI `stream_options.include_usage`, llama.cpp timings);
- SSE comment lines (`: keep-alive`, OpenRouter's `: PROCESSING`), `event:` / `id:` / `retry:`
  fields, `data:` with or without the space, CRLF line endings;
- a tool call's `id`/`type`/`name` only on its first delta (OpenAI, vLLM), or arguments arriving
  whole in one chunk (Ollama, llama.cpp), or arguments sent as a JSON object instead of a string;
- no `index` on tool-call deltas (old Ollama) and every parallel call reusing `index: 0` with a new
  `id` (Ollama): a new id at an occupied index opens a new call;
- a body ending after a `finish_reason` without `data: [DONE]`;
- error events mid-stream as `{"error": {...}}` or vLLM's `{"object": "error", "message": ...}`.

Timeouts: `connect_timeout_s` bounds the TCP/TLS connect; `first_token_timeout_s` bounds the time
from sending the request to the first `data:` event (kind "timeout"); `idle_timeout_s` bounds the
gap between two `data:` events (kind "stalled"; comment keep-alives do not count as progress);
`total_timeout_s` bounds the whole exchange (kind "timeout").

Close the stream early with `aclose()` (or `contextlib.aclosing`): the HTTP response is closed at
once. A bare `break` out of `async for` only closes it when the generator is garbage-collected.
"""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

import httpx

__all__ = [
    "ChatEvent",
    "ChatRequest",
    "OpenAiChat",
    "ProviderError",
    "StreamDone",
    "TextDelta",
    "ToolCallRequest",
]

ErrorKind = Literal["connect", "http", "timeout", "stalled", "garbage", "stream_ended"]

_SNIPPET = 300
_MAX_ERROR_BODY = 64 * 1024
_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_DRAIN_S = 0.05


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    """OpenAI `tools` (`{"type": "function", "function": {...}}`)."""
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallRequest:
    """One assembled tool call; `arguments` is the raw JSON string as the model wrote it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class StreamDone:
    """The last event of every successful stream. `finish_reason` is the provider's own
    ("stop", "tool_calls", "length", ...), or None when it sent `[DONE]` without one."""

    finish_reason: str | None
    tool_calls: tuple[ToolCallRequest, ...] = ()


ChatEvent = TextDelta | StreamDone


class ProviderError(Exception):
    """The LLM provider failed; `str(exc)` is a one-line description."""

    def __init__(self, kind: ErrorKind, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.status: int | None = status

    @property
    def retryable(self) -> bool:
        """Worth trying again (same or another provider): everything but a definite 4xx refusal."""
        if self.kind != "http":
            return True
        status = self.status or 0
        return status in _RETRYABLE_STATUSES or status >= 500

    def __repr__(self) -> str:
        return f"ProviderError(kind={self.kind!r}, status={self.status!r}, message={str(self)!r})"


# -- parsing helpers ------------------------------------------------------------------------------
def _snippet(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line[:_SNIPPET]


def _error_message(payload: Any) -> str | None:
    """The human message of an OpenAI-style (or vLLM / FastAPI-style) error payload, if any."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        return str(message) if message else json.dumps(error)[:_SNIPPET]
    if isinstance(error, str) and error:
        return error
    if payload.get("object") == "error" and payload.get("message"):
        return str(payload["message"])
    detail = payload.get("detail")
    if isinstance(detail, str) and detail:
        return detail
    return None


def _is_error_event(payload: dict[str, Any]) -> bool:
    return payload.get("error") is not None or payload.get("object") == "error"


def _http_error(status: int, body: str) -> ProviderError:
    try:
        message = _error_message(json.loads(body))
    except ValueError:
        message = None
    detail = _snippet(message if message is not None else body) or "(empty body)"
    return ProviderError("http", f"LLM provider returned HTTP {status}: {detail}", status=status)


def _garbage(what: str) -> ProviderError:
    return ProviderError("garbage", f"LLM provider sent an unusable stream event: {what}")


def _sse_data(line: str) -> str | None:
    """The payload of a `data:` line; None for blank, comment and other SSE field lines.

    Raises `ProviderError("garbage")` for a line that is not SSE at all (e.g. a bare JSON body)."""
    if line.startswith("data:"):
        value = line[5:]
        return value[1:] if value.startswith(" ") else value
    if not line or line.startswith(":"):
        return None
    field_name = line.split(":", 1)[0]
    if field_name in ("event", "id", "retry"):
        return None
    raise _garbage(f"not an SSE line: {_snippet(line)!r}")


def _first_choice(chunk: Any) -> dict[str, Any] | None:
    """Choice 0 of a parsed chunk (None for usage-only chunks); validates the shape."""
    if not isinstance(chunk, dict):
        raise _garbage(f"expected a JSON object, got {_snippet(json.dumps(chunk))!r}")
    if _is_error_event(chunk):
        raise _garbage(f"error event: {_snippet(_error_message(chunk) or json.dumps(chunk))}")
    choices = chunk.get("choices")
    if choices is None:
        return None
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise _garbage(f"'choices' is not a list of objects: {_snippet(json.dumps(chunk))!r}")
    for choice in choices:
        if choice.get("index", 0) == 0:
            return choice
    return None


@dataclass
class _PartialCall:
    raw_index: int
    order: int
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def finish(self) -> ToolCallRequest:
        if not self.name:
            raise _garbage(f"tool call at index {self.raw_index} has no function name")
        return ToolCallRequest(self.id or f"call_{uuid.uuid4().hex[:24]}", self.name, "".join(self.arguments))


class _ToolCallAssembler:
    """Concatenates tool-call fragments per index (see the module docstring for the quirks)."""

    def __init__(self) -> None:
        self._calls: list[_PartialCall] = []
        self._by_index: dict[int, _PartialCall] = {}

    def add(self, deltas: Any) -> None:
        if not isinstance(deltas, list):
            raise _garbage(f"'tool_calls' is not a list: {_snippet(json.dumps(deltas))!r}")
        for position, delta in enumerate(deltas):
            if not isinstance(delta, dict):
                raise _garbage(f"tool call delta is not an object: {_snippet(json.dumps(delta))!r}")
            self._add_one(position, delta)

    def _add_one(self, position: int, delta: dict[str, Any]) -> None:
        raw_index = delta.get("index")
        if not isinstance(raw_index, int):
            raw_index = position
        call_id = delta.get("id") or None
        call = self._by_index.get(raw_index)
        if call is None or (call_id is not None and call.id is not None and call_id != call.id):
            call = _PartialCall(raw_index, len(self._calls))
            self._calls.append(call)
            self._by_index[raw_index] = call
        if call_id is not None:
            call.id = str(call_id)
        function = delta.get("function") or {}
        if not isinstance(function, dict):
            raise _garbage(f"tool call 'function' is not an object: {_snippet(json.dumps(delta))!r}")
        self._add_function(call, function)

    @staticmethod
    def _add_function(call: _PartialCall, function: dict[str, Any]) -> None:
        name = function.get("name")
        if isinstance(name, str) and name and name != call.name:
            call.name += name
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call.arguments.append(arguments)
        elif isinstance(arguments, dict | list):
            call.arguments.append(json.dumps(arguments))
        elif arguments is not None:
            raise _garbage(f"tool call arguments of type {type(arguments).__name__}")

    def finish(self) -> tuple[ToolCallRequest, ...]:
        ordered = sorted(self._calls, key=lambda c: (c.raw_index, c.order))
        return tuple(call.finish() for call in ordered)


@dataclass
class _StreamState:
    tools: _ToolCallAssembler = field(default_factory=_ToolCallAssembler)
    finish_reason: str | None = None
    done: bool = False

    def apply(self, data: str) -> str | None:
        """Digest one `data:` payload; returns the text it carries (possibly "")."""
        if data.strip() == "[DONE]":
            self.done = True
            return None
        try:
            chunk = json.loads(data)
        except ValueError:
            raise _garbage(f"not JSON: {_snippet(data)!r}") from None
        choice = _first_choice(chunk)
        if choice is None:
            return None
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise _garbage(f"'delta' is not an object: {_snippet(data)!r}")
        if delta.get("tool_calls") is not None:
            self.tools.add(delta["tool_calls"])
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise _garbage(f"'content' is not a string: {_snippet(data)!r}")
        return content

    def result(self) -> StreamDone:
        return StreamDone(self.finish_reason, self.tools.finish())


# -- the client -----------------------------------------------------------------------------------
class _Deadlines:
    """First-token / idle / total deadlines of one stream, on the loop's clock."""

    def __init__(self, first_token_s: float, idle_s: float, total_s: float) -> None:
        now = asyncio.get_running_loop().time()
        self._idle_s = idle_s
        self._total_s = total_s
        self._total_at = now + total_s
        self._first_token_s = first_token_s
        self._next_at = min(now + first_token_s, self._total_at)
        self.events = 0

    @property
    def next_at(self) -> float:
        return self._next_at

    def progress(self) -> None:
        self.events += 1
        self._next_at = min(asyncio.get_running_loop().time() + self._idle_s, self._total_at)

    def expired(self) -> ProviderError:
        if asyncio.get_running_loop().time() >= self._total_at:
            return ProviderError("timeout", f"LLM provider did not finish within {self._total_s:g} s")
        if self.events == 0:
            return ProviderError("timeout", f"LLM provider sent nothing within {self._first_token_s:g} s")
        return ProviderError("stalled", f"LLM provider stream stalled for more than {self._idle_s:g} s")


class OpenAiChat:
    """Client of one OpenAI-compatible endpoint; safe to share between concurrent calls."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        client: httpx.AsyncClient | None = None,
        connect_timeout_s: float = 5.0,
        first_token_timeout_s: float = 10.0,
        idle_timeout_s: float = 10.0,
        total_timeout_s: float = 120.0,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._extra_headers = dict(extra_headers or {})
        self._connect_timeout_s = connect_timeout_s
        self._first_token_timeout_s = first_token_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._total_timeout_s = total_timeout_s
        # Reads are bounded by our own deadlines; httpx only bounds connect, write and pool waits.
        self._timeout = httpx.Timeout(connect_timeout_s, read=None, write=total_timeout_s, pool=total_timeout_s)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=self._timeout)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- requests --
    def _headers(self, *, streaming: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        headers["Accept"] = "text/event-stream" if streaming else "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(self._extra_headers)
        return headers

    def _build(self, request: ChatRequest, *, streaming: bool) -> httpx.Request:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, "stream": streaming}
        if request.tools is not None:
            body["tools"] = request.tools
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        return self._client.build_request(
            "POST", self.url, json=body, headers=self._headers(streaming=streaming), timeout=self._timeout
        )

    def _transport_error(self, exc: httpx.TransportError) -> ProviderError:
        """Connecting failed ("connect"), or the provider hung up before answering ("stream_ended")."""
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return ProviderError("connect", f"could not connect to LLM provider {self.url}: timed out")
        if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol | httpx.ProxyError):
            return ProviderError("connect", f"could not connect to LLM provider {self.url}: {_describe(exc)}")
        return ProviderError("stream_ended", f"LLM provider {self.url} hung up before answering: {_describe(exc)}")

    async def _send(self, request: ChatRequest, *, streaming: bool) -> httpx.Response:
        try:
            response = await self._client.send(self._build(request, streaming=streaming), stream=True)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if not response.is_success:
            try:
                body = await _read_limited(response)
            finally:
                await response.aclose()
            raise _http_error(response.status_code, body)
        return response

    # -- streaming --
    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        """Stream one completion: `TextDelta`s, then one `StreamDone`; raises `ProviderError`.

        Close it early with `aclose()`: the HTTP response is closed at once."""
        deadlines = _Deadlines(self._first_token_timeout_s, self._idle_timeout_s, self._total_timeout_s)
        state = _StreamState()
        try:
            async with asyncio.timeout_at(deadlines.next_at):
                response = await self._send(request, streaming=True)
        except TimeoutError:
            raise deadlines.expired() from None
        try:
            async with contextlib.aclosing(self._events(response, deadlines, state)) as texts:
                async for text in texts:
                    yield TextDelta(text)
        finally:
            await response.aclose()
        yield state.result()

    async def _events(self, response: httpx.Response, deadlines: _Deadlines, state: _StreamState) -> AsyncIterator[str]:
        """Non-empty content of each event until `[DONE]` or a valid end of body."""
        lines = response.aiter_lines()
        while not state.done:
            line = await _next_line(lines, deadlines, state)
            if line is None:
                return
            data = _sse_data(line)
            if data is None:
                continue
            deadlines.progress()
            text = state.apply(data)
            if text:
                yield text
                deadlines.progress()  # the consumer's own time is not the provider's stall
        await _drain(lines)

    # -- non-streaming --
    async def complete(self, request: ChatRequest) -> str:
        """One non-streaming completion: `choices[0].message.content` (or "")."""
        try:
            async with asyncio.timeout(self._total_timeout_s):
                response = await self._send(request, streaming=False)
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ProviderError("timeout", f"LLM provider did not answer within {self._total_timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise ProviderError("stream_ended", f"LLM provider response broke off: {_describe(exc)}") from exc
        return _message_content(body)


async def _next_line(lines: AsyncIterator[str], deadlines: _Deadlines, state: _StreamState) -> str | None:
    """The next line of the body; None at a valid end of body; raises on timeout or a bad end."""
    try:
        async with asyncio.timeout_at(deadlines.next_at):
            return await anext(lines)
    except TimeoutError:
        raise deadlines.expired() from None
    except StopAsyncIteration:
        if state.finish_reason is not None:
            return None
        _raise_ended("the response ended without [DONE] or a finish_reason")
    except httpx.TransportError as exc:
        if state.finish_reason is not None:
            return None
        _raise_ended(f"the connection broke off ({_describe(exc)})")


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read what follows `[DONE]` (normally just the end of the body) so the connection can be reused;
    gives up quickly on a server that keeps the body open."""
    with contextlib.suppress(TimeoutError, httpx.TransportError):
        async with asyncio.timeout(_DRAIN_S):
            async for _ in lines:
                pass


def _raise_ended(why: str) -> NoReturn:
    raise ProviderError("stream_ended", f"LLM provider stream ended early: {why}")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {_snippet(text)}" if text else type(exc).__name__


async def _read_limited(response: httpx.Response) -> str:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _MAX_ERROR_BODY:
                break
    except httpx.TransportError:
        pass
    return b"".join(chunks).decode("utf-8", errors="replace")


def _message_content(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        raise _garbage(f"not JSON: {_snippet(body.decode('utf-8', errors='replace'))!r}") from None
    if isinstance(payload, dict) and _is_error_event(payload):
        raise _garbage(f"error response: {_snippet(_error_message(payload) or '')}")
    try:
        message = payload["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise _garbage(f"no choices[0].message in {_snippet(body.decode('utf-8', errors='replace'))!r}") from None
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""
