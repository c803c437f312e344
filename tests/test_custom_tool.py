"""Custom tools over HTTP (spec D.3), against a real tool server on loopback.

The server records every request exactly as a tool author's endpoint would see it and answers as
each test scripts (status, body, delay).
"""

import json
import logging
import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from retell.lib.webhook_auth import verify

from tests.tool_server import Reply, Seen, ToolServer, free_port, running_tool_server
from voxline.llm.custom_tool import MAX_CONTENT_CHARS, ToolOutcome, backoff_delay, run_custom_tool
from voxline.net.egress import GuardedTransport

KEY = "key_tool_signing_secret"
CALL = {"call_id": "call_abc123", "agent_id": "agent_1", "call_status": "ongoing", "retell_llm_dynamic_variables": {}}


@pytest.fixture(scope="module")
def running_server() -> Iterator[ToolServer]:
    with running_tool_server() as server:
        yield server


@pytest.fixture
def srv(running_server: ToolServer) -> ToolServer:
    running_server.requests.clear()
    running_server.replies.clear()
    return running_server


# Running tools


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_tool(srv: ToolServer, **fields: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "type": "custom",
        "name": "lookup_order",
        "description": "Look up an order",
        "url": f"{srv.url}/tools/lookup",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
            "required": ["order_id"],
        },
    }
    tool.update(fields)
    return tool


async def run(
    tool: dict[str, Any],
    args: dict[str, Any] | None = None,
    *,
    allow_private: bool = True,
    sleep: Sleeps | None = None,
    client: httpx.AsyncClient | None = None,
    now_ms: int | None = None,
) -> ToolOutcome:
    async def execute(http: httpx.AsyncClient) -> ToolOutcome:
        return await run_custom_tool(
            tool,
            {"order_id": "A-17"} if args is None else args,
            CALL,
            client=http,
            signing_key=KEY,
            allow_private=allow_private,
            sleep=sleep or Sleeps(),
            rng=random.Random(7),
            **({} if now_ms is None else {"now_ms": lambda: now_ms}),
        )

    if client is not None:
        return await execute(client)
    async with httpx.AsyncClient(trust_env=False) as http:
        return await execute(http)


def assert_signed(seen: Seen, signed_body: str) -> None:
    assert verify(signed_body, KEY, seen.headers["x-retell-signature"])


# What the tool author's server sees


async def test_default_post_request(srv: ToolServer) -> None:
    tool = make_tool(srv, headers={"Authorization": "Bearer t0k", "X-Tenant": "acme"}, query_params={"v": "2"})
    outcome = await run(tool, {"order_id": "A-17", "verbose": True})
    assert outcome.successful and outcome.attempts == 1 and outcome.status_code == 200
    assert outcome.content == '{"ok":true}'
    [seen] = srv.requests
    assert (seen.method, seen.path, seen.query) == ("POST", "/tools/lookup", {"v": ["2"]})
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["authorization"] == "Bearer t0k" and seen.headers["x-tenant"] == "acme"
    assert json.loads(seen.body) == {
        "name": "lookup_order",
        "call": CALL,
        "args": {"order_id": "A-17", "verbose": True},
    }
    assert_signed(seen, seen.text)


async def test_query_params_merge_with_url_query(srv: ToolServer) -> None:
    tool = make_tool(srv, url=f"{srv.url}/q?fixed=1&v=old", query_params={"v": "new", "lang": "fr"})
    await run(tool)
    assert srv.requests[0].query == {"fixed": ["1"], "v": ["new"], "lang": ["fr"]}


async def test_args_at_root(srv: ToolServer) -> None:
    await run(make_tool(srv, args_at_root=True), {"order_id": "B-2"})
    [seen] = srv.requests
    assert json.loads(seen.body) == {"order_id": "B-2"}
    assert_signed(seen, seen.text)


async def test_const_properties_override_llm_args(srv: ToolServer) -> None:
    tool = make_tool(srv)
    tool["parameters"]["properties"]["store"] = {"type": "string", "const": "store-42"}
    tool["parameters"]["properties"]["region"] = {"type": "string", "const": "eu"}
    await run(tool, {"order_id": "A-17", "store": "hacked"})
    assert json.loads(srv.requests[0].body)["args"] == {"order_id": "A-17", "store": "store-42", "region": "eu"}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_bodyless_methods_sign_the_empty_string(srv: ToolServer, method: str) -> None:
    outcome = await run(make_tool(srv, method=method, query_params={"id": "7"}, parameter_type="form"))
    assert outcome.successful
    [seen] = srv.requests
    assert (seen.method, seen.body, seen.query) == (method, b"", {"id": ["7"]})
    assert "content-type" not in seen.headers
    assert seen.headers.get("content-length", "0") == "0"
    assert_signed(seen, "")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "post"])
async def test_methods_with_a_body(srv: ToolServer, method: str) -> None:
    await run(make_tool(srv, method=method))
    [seen] = srv.requests
    assert seen.method == method.upper()
    assert json.loads(seen.body)["args"] == {"order_id": "A-17"}
    assert_signed(seen, seen.text)


async def test_form_encoding(srv: ToolServer) -> None:
    await run(make_tool(srv, parameter_type="form"), {"order_id": "A 17&x", "verbose": False})
    [seen] = srv.requests
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(seen.text)
    assert form["name"] == ["lookup_order"]
    assert json.loads(form["call"][0]) == CALL
    assert json.loads(form["args"][0]) == {"order_id": "A 17&x", "verbose": False}
    assert_signed(seen, seen.text)


async def test_form_encoding_args_at_root(srv: ToolServer) -> None:
    await run(make_tool(srv, parameter_type="form", args_at_root=True), {"order_id": "A-17", "n": 3, "tags": ["a"]})
    form = parse_qs(srv.requests[0].text)
    assert form == {"order_id": ["A-17"], "n": ["3"], "tags": ['["a"]']}


async def test_configured_headers_cannot_replace_signature_or_content_type(srv: ToolServer) -> None:
    tool = make_tool(srv, headers={"content-type": "text/plain", "X-Retell-Signature": "forged"})
    await run(tool, now_ms=1_700_000_000_000)
    [seen] = srv.requests
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-retell-signature"].startswith("v=1700000000000,d=")


async def test_signature_is_fresh_and_valid_on_every_attempt(srv: ToolServer) -> None:
    srv.script(Reply(503), Reply(200))
    await run(make_tool(srv, max_retry=1))
    assert len(srv.requests) == 2
    for seen in srv.requests:
        assert_signed(seen, seen.text)


# Responses


async def test_response_is_truncated(srv: ToolServer) -> None:
    srv.script(Reply(body="x" * 20_000, content_type="text/plain"))
    outcome = await run(make_tool(srv))
    assert outcome.successful
    assert outcome.content == "x" * MAX_CONTENT_CHARS


async def test_non_json_response_is_passed_as_text(srv: ToolServer) -> None:
    srv.script(Reply(body="Order A-17 ships tomorrow.", content_type="text/plain"))
    outcome = await run(make_tool(srv, response_variables={"x": "a"}))
    assert (outcome.content, outcome.variables) == ("Order A-17 ships tomorrow.", {})


async def test_response_variables(srv: ToolServer) -> None:
    body = {
        "data": {"items": [{"name": "Widget", "price": 9.5}, {"name": "Gadget"}], "count": 2, "ok": True},
        "status": "shipped",
        "meta": None,
        "a.b": "dotted",
    }
    srv.script(Reply(body=json.dumps(body)))
    mapping = {
        "first": "data.items[0].name",
        "second_price": "data.items[1].price",  # missing key
        "third": "data.items[2].name",  # index out of range
        "price": "data.items[0].price",
        "count": "data.count",
        "ok": "data.ok",
        "status": "status",
        "items": "data.items",
        "meta": "meta",
        "nowhere": "nope.deeper",
        "bad": "data..count",
    }
    outcome = await run(make_tool(srv, response_variables=mapping))
    assert outcome.variables == {
        "first": "Widget",
        "price": "9.5",
        "count": "2",
        "ok": "true",
        "status": "shipped",
        "items": '[{"name":"Widget","price":9.5},{"name":"Gadget"}]',
        "meta": "null",
    }
    assert json.loads(outcome.content) == body


async def test_only_json_objects_fill_variables(srv: ToolServer) -> None:
    srv.script(Reply(body='[{"name":"x"}]'))
    outcome = await run(make_tool(srv, response_variables={"n": "[0].name"}))
    assert outcome.successful and outcome.variables == {}


# Failures and retries


async def test_server_error_without_retry(srv: ToolServer) -> None:
    srv.script(Reply(500, "boom " * 200, content_type="text/plain"))
    outcome = await run(make_tool(srv))
    assert not outcome.successful
    assert outcome.content == "Tool call failed: HTTP 500: " + ("boom " * 200)[:500]
    assert (outcome.attempts, outcome.status_code, len(srv.requests)) == (1, 500, 1)


async def test_retry_then_success(srv: ToolServer) -> None:
    srv.script(Reply(500, "first"), Reply(200, '{"done":1}'))
    sleeps = Sleeps()
    outcome = await run(make_tool(srv, max_retry=2), sleep=sleeps)
    assert outcome.successful and outcome.content == '{"done":1}'
    assert (outcome.attempts, len(srv.requests), outcome.status_code) == (2, 2, 200)
    assert len(sleeps.delays) == 1 and 0.125 <= sleeps.delays[0] <= 0.25
    assert outcome.detail == "attempt 1: HTTP 500; attempt 2: HTTP 200"


async def test_retries_exhausted(srv: ToolServer) -> None:
    srv.script(Reply(502), Reply(503), Reply(500, "last"))
    sleeps = Sleeps()
    outcome = await run(make_tool(srv, max_retry=2), sleep=sleeps)
    assert not outcome.successful and outcome.content == "Tool call failed: HTTP 500: last"
    assert (outcome.attempts, len(srv.requests)) == (3, 3)
    assert 0.125 <= sleeps.delays[0] <= 0.25 and 0.25 <= sleeps.delays[1] <= 0.5


@pytest.mark.parametrize(("status", "attempts"), [(404, 1), (400, 1), (401, 1), (408, 3), (429, 3)])
async def test_client_errors_are_not_retried_except_408_429(srv: ToolServer, status: int, attempts: int) -> None:
    srv.script(*[Reply(status, "nope")] * 3)
    outcome = await run(make_tool(srv, max_retry=2))
    assert (outcome.attempts, len(srv.requests), outcome.status_code) == (attempts, attempts, status)
    assert outcome.content == f"Tool call failed: HTTP {status}: nope"


async def test_timeout_per_attempt(srv: ToolServer) -> None:
    srv.script(Reply(delay=1.0))
    started = time.monotonic()
    outcome = await run(make_tool(srv, timeout_ms=300))
    assert time.monotonic() - started < 0.9
    assert not outcome.successful and outcome.status_code is None
    assert outcome.content == "Tool call failed: timed out after 0.3 s"
    assert outcome.attempts == 1


async def test_timeout_then_retry_succeeds(srv: ToolServer) -> None:
    srv.script(Reply(delay=1.0), Reply(200, '{"fast":true}'))
    outcome = await run(make_tool(srv, timeout_ms=300, max_retry=1))
    assert outcome.successful and outcome.content == '{"fast":true}'
    assert outcome.detail == "attempt 1: timed out after 0.3 s; attempt 2: HTTP 200"


async def test_connection_error_is_reported_and_retried() -> None:
    tool = {"name": "gone", "url": f"http://127.0.0.1:{free_port()}/x", "max_retry": 1}
    outcome = await run(tool)
    assert not outcome.successful and outcome.attempts == 2
    assert outcome.content.startswith("Tool call failed: connection error (ConnectError")


async def test_loopback_refused_without_allow_private(srv: ToolServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="voxline.llm.custom_tool"):
        outcome = await run(make_tool(srv, max_retry=3), allow_private=False)
    assert outcome == ToolOutcome(
        content="Tool call refused: 127.0.0.1 is a loopback address",
        successful=False,
        variables={},
        attempts=1,
        status_code=None,
        detail="attempt 1: refused: 127.0.0.1 is a loopback address",
    )
    assert srv.requests == []
    assert any("call_abc123" in r.getMessage() and "lookup_order" in r.getMessage() for r in caplog.records)


async def test_localhost_name_refused_without_allow_private(srv: ToolServer) -> None:
    outcome = await run(make_tool(srv, url=f"http://localhost:{srv.port}/x"), allow_private=False)
    assert outcome.content == "Tool call refused: localhost is a loopback name"
    assert srv.requests == []


async def test_bad_scheme_refused_even_with_allow_private(srv: ToolServer) -> None:
    outcome = await run(make_tool(srv, url="file:///etc/passwd"))
    assert outcome.content.startswith("Tool call refused: scheme 'file'")


async def test_guarded_transport_client(srv: ToolServer) -> None:
    """A client built on GuardedTransport works end to end (and re-checks at connect time)."""
    async with httpx.AsyncClient(transport=GuardedTransport(allow_private=True), trust_env=False) as client:
        outcome = await run(make_tool(srv, url=f"http://localhost:{srv.port}/g"), client=client)
    assert outcome.successful and srv.requests[0].headers["host"] == f"localhost:{srv.port}"


async def test_misconfigured_tool_does_not_raise(srv: ToolServer) -> None:
    outcome = await run(make_tool(srv, method="TRACE"))
    assert not outcome.successful and outcome.attempts == 0
    assert outcome.content.startswith("Tool call failed: invalid tool configuration")
    assert srv.requests == []


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(retry, rng) for retry in range(1, 9)]
    assert all(delay <= 4.0 for delay in delays)
    assert all(2.0 <= delay for delay in delays[5:])
    assert len(set(delays)) == len(delays)


async def test_response_charset_is_honoured(srv: ToolServer) -> None:
    srv.script(Reply(body="café".encode("latin-1"), content_type="text/plain; charset=latin-1"))
    outcome = await run(make_tool(srv))
    assert outcome.content == "café"
