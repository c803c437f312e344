"""Executes a Retell "custom" tool over HTTP (spec D.3).

The request goes to the tool's ``url`` plus ``query_params``, with the tool's headers, an
``X-Retell-Signature`` over the exact body string sent (``""`` for GET and DELETE, which carry no
body) and, for POST/PUT/PATCH, a JSON or form-encoded body::

    {"name": <tool name>, "call": <call object>, "args": {...}}    # or just the args (args_at_root)

Arguments whose schema property carries ``const`` are filled by the platform and override the
LLM's value. Any 2xx is a success: the body becomes the LLM's tool result (truncated to 15,000
characters) and, when it is a JSON object, fills ``response_variables``. Failures come back as text
for the LLM; `run_custom_tool` never raises for request problems. Every attempt passes the egress
guard first, is bounded by ``timeout_ms``, and failed attempts are retried ``max_retry`` times with
jittered exponential backoff (not after a 4xx other than 408/429, nor after an egress refusal).

Form encoding (``parameter_type: "form"``): top-level fields become form fields; strings are sent
as is, other values as compact JSON (so ``call`` and ``args`` are JSON strings unless
``args_at_root`` spreads the arguments into fields of their own).
"""

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from voxline.net.egress import EgressRefused, check_url
from voxline.signing import SIGNATURE_HEADER, compact_json, sign

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
BODYLESS_METHODS = frozenset({"GET", "DELETE"})
DEFAULT_TIMEOUT_MS = 120_000
MAX_RETRY = 5
MAX_CONTENT_CHARS = 15_000
MAX_ERROR_BODY_CHARS = 500
MAX_RESPONSE_BYTES = 1 << 20  # bodies beyond this are cut off (and never parsed for variables)
BACKOFF_BASE_S = 0.25
BACKOFF_FACTOR = 2.0
BACKOFF_CAP_S = 4.0

_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True)
class ToolOutcome:
    content: str  # what the LLM sees
    successful: bool
    variables: dict[str, str]  # from response_variables
    attempts: int
    status_code: int | None
    detail: str  # for the call log: what happened on each attempt


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


# Building the request


@dataclass(frozen=True)
class _PreparedRequest:
    method: str
    url: httpx.URL
    headers: dict[str, str]
    body: str | None  # None: no body (GET/DELETE)
    timeout_s: float
    max_retry: int


def effective_args(tool: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """The LLM's arguments with every ``const`` property of the tool's schema imposed."""
    merged = dict(args)
    parameters = tool.get("parameters")
    properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
    for name, schema in (properties if isinstance(properties, Mapping) else {}).items():
        if isinstance(schema, Mapping) and "const" in schema:
            merged[name] = schema["const"]
    return merged


def _payload(tool: Mapping[str, Any], args: dict[str, Any], call: Mapping[str, Any]) -> dict[str, Any]:
    if tool.get("args_at_root"):
        return args
    return {"name": tool.get("name", ""), "call": dict(call), "args": args}


def _form_encode(payload: Mapping[str, Any]) -> str:
    fields = [(str(key), value if isinstance(value, str) else compact_json(value)) for key, value in payload.items()]
    return urlencode(fields)


def _encode_body(tool: Mapping[str, Any], payload: dict[str, Any]) -> tuple[str, str]:
    """(body, content type) for the tool's ``parameter_type``."""
    if tool.get("parameter_type", "json") == "form":
        return _form_encode(payload), "application/x-www-form-urlencoded"
    return compact_json(payload), "application/json"


def _prepare(tool: Mapping[str, Any], args: Mapping[str, Any], call: Mapping[str, Any]) -> _PreparedRequest:
    """Raises ValueError / httpx.InvalidURL for a tool that cannot be called."""
    method = str(tool.get("method") or "POST").upper()
    if method not in METHODS:
        raise ValueError(f"unsupported method {method!r}")
    url = httpx.URL(str(tool.get("url") or ""))
    query = {str(key): value for key, value in (tool.get("query_params") or {}).items()}
    if query:
        url = url.copy_merge_params(query)
    headers = {str(key): str(value) for key, value in (tool.get("headers") or {}).items()}
    body: str | None = None
    if method not in BODYLESS_METHODS:
        body, content_type = _encode_body(tool, _payload(tool, effective_args(tool, args), call))
        _set_header(headers, "Content-Type", content_type)
    timeout_ms = tool.get("timeout_ms")
    timeout_ms = DEFAULT_TIMEOUT_MS if timeout_ms is None else int(timeout_ms)
    max_retry = min(max(int(tool.get("max_retry") or 0), 0), MAX_RETRY)
    return _PreparedRequest(method, url, headers, body, timeout_ms / 1000, max_retry)


def _set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set `name`, replacing any spelling of it the tool author configured."""
    for key in [key for key in headers if key.lower() == name.lower()]:
        del headers[key]
    headers[name] = value


# Reading the response


def extract_path(document: object, path: str) -> object:
    """Follow a ``data.items[0].name`` path; `_MISSING` when any step is absent."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    tokens = list(_PATH_TOKEN.finditer(path))
    if not path or "".join(token.group(0) for token in tokens) != path:
        return _MISSING
    current = document
    for token in tokens:
        key, index = token.group(1), token.group(2)
        if key is not None and isinstance(current, dict) and key in current:
            current = current[key]
        elif index is not None and isinstance(current, list) and int(index) < len(current):
            current = current[int(index)]
        else:
            return _MISSING
    return current


def _variables(tool: Mapping[str, Any], text: str) -> dict[str, str]:
    mapping = tool.get("response_variables") or {}
    if not mapping:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    variables: dict[str, str] = {}
    for name, path in mapping.items():
        value = extract_path(document, str(path))
        if value is not _MISSING:
            variables[str(name)] = value if isinstance(value, str) else compact_json(value)
    return variables


async def _read_capped(response: httpx.Response) -> tuple[str, bool]:
    """The decoded body (at most MAX_RESPONSE_BYTES) and whether it was cut off."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            break
    raw = b"".join(chunks)[:MAX_RESPONSE_BYTES]
    return _decode(raw, response.charset_encoding), size > MAX_RESPONSE_BYTES


def _decode(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # unknown charset name
        return raw.decode("utf-8", errors="replace")


# One attempt


@dataclass
class _Attempt:
    content: str
    successful: bool
    retryable: bool
    note: str
    status_code: int | None = None
    variables: dict[str, str] = field(default_factory=dict)


def _seconds(value: float) -> str:
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _status_attempt(tool: Mapping[str, Any], status: int, text: str, cut: bool) -> _Attempt:
    if 200 <= status < 300:
        variables = {} if cut else _variables(tool, text)
        return _Attempt(text[:MAX_CONTENT_CHARS], True, False, f"HTTP {status}", status, variables)
    retryable = not (400 <= status < 500) or status in (408, 429)
    content = f"Tool call failed: HTTP {status}: {text[:MAX_ERROR_BODY_CHARS]}"
    return _Attempt(content, False, retryable, f"HTTP {status}", status)


async def _send(
    client: httpx.AsyncClient, tool: Mapping[str, Any], prepared: _PreparedRequest, signature: str
) -> _Attempt:
    headers = {**prepared.headers, SIGNATURE_HEADER: signature}
    content = None if prepared.body is None else prepared.body.encode("utf-8")
    request = client.build_request(
        prepared.method, prepared.url, headers=headers, content=content, timeout=prepared.timeout_s
    )
    async with asyncio.timeout(prepared.timeout_s):
        response = await client.send(request, stream=True)
        try:
            text, cut = await _read_capped(response)
        finally:
            await response.aclose()
    return _status_attempt(tool, response.status_code, text, cut)


async def _attempt(
    client: httpx.AsyncClient,
    tool: Mapping[str, Any],
    prepared: _PreparedRequest,
    *,
    signing_key: str,
    allow_private: bool,
    now_ms: Callable[[], int],
) -> _Attempt:
    """One guarded, signed, time-bounded request; never raises for request problems."""
    try:
        await check_url(str(prepared.url), allow_private=allow_private)
        signature = sign(prepared.body or "", signing_key, now_ms())
        return await _send(client, tool, prepared, signature)
    except EgressRefused as exc:  # from check_url, or from a GuardedTransport at connect time
        return _Attempt(f"Tool call refused: {exc.reason}", False, False, f"refused: {exc.reason}")
    except (TimeoutError, httpx.TimeoutException):
        seconds = _seconds(prepared.timeout_s)
        return _Attempt(f"Tool call failed: timed out after {seconds} s", False, True, f"timed out after {seconds} s")
    except httpx.HTTPError as exc:
        message = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return _Attempt(f"Tool call failed: connection error ({message})", False, True, message)


# Retries


def backoff_delay(retry: int, rng: random.Random) -> float:
    """Delay before retry number `retry` (1-based): capped exponential, equal jitter."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * BACKOFF_FACTOR ** (retry - 1))
    return rng.uniform(ceiling / 2, ceiling)


async def run_custom_tool(
    tool: Mapping[str, Any],
    args: Mapping[str, Any],
    call: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    signing_key: str,
    allow_private: bool,
    now_ms: Callable[[], int] = _epoch_ms,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> ToolOutcome:
    """Call the tool's endpoint (with retries) and report what the LLM should see."""
    name = str(tool.get("name", ""))
    call_id = str(call.get("call_id", ""))
    try:
        # The body holds the call so far (transcripts with word timings): tens of kB on a long
        # call, so it is serialised off the event loop.
        prepared = await asyncio.to_thread(_prepare, tool, args, call)
    except (ValueError, TypeError, httpx.InvalidURL) as exc:
        logger.warning("custom tool %r (call %s) is misconfigured: %s", name, call_id, exc)
        return ToolOutcome(f"Tool call failed: invalid tool configuration: {exc}", False, {}, 0, None, str(exc))
    rng = rng or random.Random()
    notes: list[str] = []
    result: _Attempt | None = None
    for number in range(1, prepared.max_retry + 2):
        if number > 1:
            await sleep(backoff_delay(number - 1, rng))
        result = await _attempt(
            client, tool, prepared, signing_key=signing_key, allow_private=allow_private, now_ms=now_ms
        )
        notes.append(f"attempt {number}: {result.note}")
        if result.successful:
            break
        logger.warning("custom tool %r (call %s) attempt %d: %s", name, call_id, number, result.note)
        if not result.retryable:
            break
    assert result is not None
    return ToolOutcome(
        result.content, result.successful, result.variables, len(notes), result.status_code, "; ".join(notes)
    )
