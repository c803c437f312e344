"""The custom-LLM WebSocket client against real LLM servers on loopback (spec E).

Each test scripts its own `websockets` server: what it sends, when, and how it closes. Timings
are shrunk (pings every 0.1 s, pongs due within 0.3 s) so reconnect and failure paths run fast.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from voxline.llm.custom_llm import CustomLlmClient, llm_socket_url
from voxline.llm.interfaces import (
    AgentConfigUpdate,
    AgentInterrupt,
    LlmEnded,
    LlmEvent,
    MetadataEvent,
    ResponseChunk,
    ToolCallInvocation,
    ToolCallResult,
)
from voxline.schemas.llm_websocket import CorruptPayload, MalformedMessage, ResponseMessage, parse_server_message

CALL = {"call_id": "call_test", "agent_id": "agent_1", "call_type": "web_call", "call_status": "registered"}
TRANSCRIPT = [{"role": "agent", "content": "Hi", "words": []}, {"role": "user", "content": "Hello", "words": []}]


@dataclass
class Seen:
    """What one server-side socket saw: its path, the messages it got, how it closed."""

    path: str
    received: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None


Script = Callable[[ServerConnection, Seen, int], Awaitable[None]]


class ScriptedLlmServer:
    """A real LLM server whose behaviour per connection is the test's `script`."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections: list[Seen] = []
        self.server: Server | None = None

    async def __aenter__(self) -> "ScriptedLlmServer":
        self.server = await serve(self._handle, "127.0.0.1", 0, compression=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/llm-websocket"

    async def _handle(self, ws: ServerConnection) -> None:
        seen = Seen(path=ws.request.path if ws.request else "")
        self.connections.append(seen)
        try:
            await self.script(ws, seen, len(self.connections))
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        seen.close_code = ws.close_code


async def send(ws: ServerConnection, message: Any) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ServerConnection, seen: Seen, kind: str | None = None) -> dict[str, Any]:
    """The next message (skipping pings unless asked for), recorded in `seen`."""
    while True:
        async with asyncio.timeout(5):
            message = json.loads(await ws.recv())
        seen.received.append(message)
        if kind is None and message["interaction_type"] != "ping_pong":
            return message
        if message["interaction_type"] == kind:
            return message


def client_for(server: ScriptedLlmServer, **timings: Any) -> CustomLlmClient:
    fast: dict[str, Any] = {
        "open_timeout": 1.0,
        "open_retry_delay": 0.05,
        "ping_interval": 0.1,
        "pong_timeout": 0.3,
        "reconnect_delay": 0.01,
        "close_timeout": 0.3,
        **timings,
    }
    return CustomLlmClient(server.url, "call_test", **fast)


async def take(client: CustomLlmClient, count: int, within: float = 5.0) -> list[LlmEvent]:
    events: list[LlmEvent] = []
    iterator = client.events()
    async with asyncio.timeout(within):
        async for event in iterator:
            events.append(event)
            if len(events) == count:
                break
    return events


async def take_until_complete(client: CustomLlmClient, within: float = 5.0) -> list[ResponseChunk]:
    chunks: list[ResponseChunk] = []
    async with asyncio.timeout(within):
        async for event in client.events():
            assert isinstance(event, ResponseChunk), event
            chunks.append(event)
            if event.content_complete:
                return chunks
    raise AssertionError("events ended before content_complete")


async def ended(client: CustomLlmClient, within: float = 5.0) -> LlmEnded:
    async with asyncio.timeout(within):
        async for event in client.events():
            if isinstance(event, LlmEnded):
                return event
    raise AssertionError("events ended without LlmEnded")


def chunk(response_id: int, content: str, complete: bool, **extra: Any) -> dict[str, Any]:
    return {
        "response_type": "response",
        "response_id": response_id,
        "content": content,
        "content_complete": complete,
        **extra,
    }


# --- URL and parsing ---------------------------------------------------------------------------


def test_socket_url_appends_call_id_after_one_trailing_slash_and_before_the_query() -> None:
    assert llm_socket_url("ws://h/llm-websocket", "c1") == "ws://h/llm-websocket/c1"
    assert llm_socket_url("wss://h/llm-websocket/", "c1") == "wss://h/llm-websocket/c1"
    assert llm_socket_url("wss://h/llm-websocket//", "c1") == "wss://h/llm-websocket//c1"
    assert llm_socket_url("wss://h:9/llm?token=a/b", "c1") == "wss://h:9/llm/c1?token=a/b"


def test_parser_separates_corrupt_frames_from_malformed_messages() -> None:
    message, _ = parse_server_message('{"response_id": 2, "content": "x", "content_complete": false}')
    assert isinstance(message, ResponseMessage) and message.response_id == 2
    for corrupt in (b"{}", "not json", '{"a": '):
        with pytest.raises(CorruptPayload):
            parse_server_message(corrupt)
    for malformed in ('{"response_id": "2", "content": "x", "content_complete": false}', "[1]", '{"response_type": 3}'):
        with pytest.raises(MalformedMessage):
            parse_server_message(malformed)


# --- the conversation ----------------------------------------------------------------------------


async def test_config_with_call_details_gets_call_object_then_begin_message_streams() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, {"response_type": "config", "config": {"call_details": True}})
        await receive(ws, seen)  # call_details, like the node demo: begin only after it
        await send(ws, chunk(0, "Hello, ", False))
        await send(ws, chunk(0, "how can I help?", True))

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        chunks = await take_until_complete(client)
        await client.close()
    assert server.connections[0].path == "/llm-websocket/call_test"
    assert server.connections[0].received[0] == {"interaction_type": "call_details", "call": CALL}
    assert [(c.response_id, c.content, c.content_complete) for c in chunks] == [
        (0, "Hello, ", False),
        (0, "how can I help?", True),
    ]
    directions = [
        (m.direction, m.payload.get("response_type") or m.payload.get("interaction_type")) for m in client.message_log
    ]
    assert directions == [
        ("from_llm", "config"),
        ("to_llm", "call_details"),
        ("from_llm", "response"),
        ("from_llm", "response"),
    ]
    times = [m.at for m in client.message_log]
    assert times == sorted(times)


async def test_update_only_and_requests_arrive_in_order_with_increasing_ids() -> None:
    got_all = asyncio.Event()

    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        for _ in range(4):
            await receive(ws, seen)
        got_all.set()

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        await client.update(TRANSCRIPT[:1], None)
        await client.update(TRANSCRIPT, "user_turn")
        await client.request_response(1, TRANSCRIPT)
        await client.request_response(2, TRANSCRIPT, reminder=True)
        with pytest.raises(ValueError, match="increase"):
            await client.request_response(2, TRANSCRIPT)
        async with asyncio.timeout(5):
            await got_all.wait()
        await client.close()
    received = server.connections[0].received
    assert received == [
        {"interaction_type": "update_only", "transcript": TRANSCRIPT[:1]},
        {"interaction_type": "update_only", "transcript": TRANSCRIPT, "turntaking": "user_turn"},
        {"interaction_type": "response_required", "response_id": 1, "transcript": TRANSCRIPT},
        {"interaction_type": "reminder_required", "response_id": 2, "transcript": TRANSCRIPT},
    ]


async def test_transcript_with_tool_calls_is_sent_only_when_config_asks() -> None:
    tools = [*TRANSCRIPT, {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "f", "arguments": "{}"}]
    got_all = asyncio.Event()

    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await receive(ws, seen)
        await send(ws, {"response_type": "config", "config": {"transcript_with_tool_calls": True}})
        await send(ws, {"response_type": "metadata", "metadata": "configured"})
        await receive(ws, seen)
        await receive(ws, seen)
        got_all.set()

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        await client.update(TRANSCRIPT, None, transcript_with_tool_calls=tools)
        assert await take(client, 1) == [MetadataEvent("configured")]
        await client.request_response(1, TRANSCRIPT, transcript_with_tool_calls=tools)
        await client.update(TRANSCRIPT, None)
        async with asyncio.timeout(5):
            await got_all.wait()
        await client.close()
    first, second, third = server.connections[0].received
    assert "transcript_with_tool_calls" not in first
    assert second["transcript_with_tool_calls"] == tools
    assert third["transcript_with_tool_calls"] == TRANSCRIPT  # no tool calls: the plain transcript


async def test_only_the_latest_requested_id_streams_and_only_until_content_complete() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await receive(ws, seen)
        await receive(ws, seen)
        await send(ws, chunk(0, "late begin", True))  # superseded by id 1 and 2
        await send(ws, chunk(1, "old answer", False))  # superseded by id 2
        await send(ws, chunk(2, "new ", False))
        await send(ws, chunk(3, "future", False))  # never requested
        await send(ws, chunk(2, "answer", True))
        await send(ws, chunk(2, "after complete", False))
        await send(ws, {"response_type": "metadata", "metadata": {"done": True}})

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        await client.request_response(1, TRANSCRIPT)
        await client.request_response(2, TRANSCRIPT)
        events = await take(client, 3)
        await client.close()
    assert events == [
        ResponseChunk(2, "new ", False),
        ResponseChunk(2, "answer", True),
        MetadataEvent({"done": True}),
    ]
    stale = [m.payload["content"] for m in client.message_log if m.note == "stale"]
    assert stale == ["late begin", "old answer", "future", "after complete"]


async def test_message_without_response_type_is_accepted_as_a_response() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, {"response_id": 0, "content": "legacy hello", "content_complete": True, "end_call": False})

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        assert await take(client, 1) == [ResponseChunk(0, "legacy hello", True)]
        await client.close()


async def test_malformed_messages_are_ignored_and_the_connection_stays() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, chunk(0, "typed wrong", "yes"))
        await send(ws, {"response_type": "response", "response_id": "0", "content": "x", "content_complete": True})
        await send(ws, [1, 2, 3])
        await send(ws, {"response_type": "no_such_type"})
        await send(ws, {"response_type": "tool_call_invocation", "tool_call_id": 5, "name": "f", "arguments": "{}"})
        await send(ws, chunk(0, "fine", True))

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        assert await take(client, 1) == [ResponseChunk(0, "fine", True)]
        await client.close()
    assert len(server.connections) == 1
    notes = [m.note for m in client.message_log]
    assert sum(note.startswith("malformed") for note in notes) == 5
    assert notes[-1] == ""


async def test_response_flags_are_carried_to_the_engine() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await receive(ws, seen)
        await send(ws, chunk(1, "Please hold.", False, no_interruption_allowed=True))
        await send(ws, chunk(1, "Transferring.", True, transfer_number="+14155550123"))
        await receive(ws, seen)
        await send(ws, chunk(2, "Press one.", True, digit_to_press="1"))
        await receive(ws, seen)
        await send(ws, chunk(3, "Bye.", True, end_call=True))

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        await client.request_response(1, TRANSCRIPT)
        first = await take_until_complete(client)
        await client.request_response(2, TRANSCRIPT)
        second = await take_until_complete(client)
        await client.request_response(3, TRANSCRIPT)
        third = await take_until_complete(client)
        await client.close()
    assert first == [
        ResponseChunk(1, "Please hold.", False, no_interruption_allowed=True),
        ResponseChunk(1, "Transferring.", True, transfer_number="+14155550123"),
    ]
    assert second == [ResponseChunk(2, "Press one.", True, digit_to_press="1")]
    assert third == [ResponseChunk(3, "Bye.", True, end_call=True)]


async def test_agent_interrupt_tool_calls_update_agent_and_metadata_become_events() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(
            ws,
            {
                "response_type": "agent_interrupt",
                "interrupt_id": 7,
                "content": "Sorry to cut in, ",
                "content_complete": False,
                "no_interruption_allowed": True,
            },
        )
        await send(
            ws,
            {
                "response_type": "agent_interrupt",
                "interrupt_id": 7,
                "content": "bye.",
                "content_complete": True,
                "end_call": True,
            },
        )
        await send(
            ws,
            {"response_type": "tool_call_invocation", "tool_call_id": "abc", "name": "book", "arguments": '{"d": 1}'},
        )
        await send(ws, {"response_type": "tool_call_result", "tool_call_id": "abc", "content": "booked"})
        await send(
            ws, {"response_type": "tool_call_result", "tool_call_id": "abd", "content": "no", "successful": False}
        )
        await send(
            ws,
            {
                "response_type": "update_agent",
                "agent_config": {
                    "responsiveness": 0.5,
                    "interruption_sensitivity": 0,
                    "reminder_trigger_ms": 5000,
                    "reminder_max_count": 0,
                },
            },
        )
        for bad in (
            {"responsiveness": 1.5},
            {"interruption_sensitivity": -0.1},
            {"reminder_trigger_ms": 0},
            {"reminder_max_count": -1},
        ):
            await send(ws, {"response_type": "update_agent", "agent_config": {"responsiveness": 0.2, **bad}})
        await send(ws, {"response_type": "update_agent", "agent_config": {"reminder_max_count": 3}})
        await send(ws, {"response_type": "metadata", "metadata": {"avatar_emotion": "Angry"}})

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        events = await take(client, 8)
        await client.close()
    assert events == [
        AgentInterrupt(7, "Sorry to cut in, ", False, no_interruption_allowed=True),
        AgentInterrupt(7, "bye.", True, end_call=True),
        ToolCallInvocation("abc", "book", '{"d": 1}'),
        ToolCallResult("abc", "booked", None),
        ToolCallResult("abd", "no", False),
        AgentConfigUpdate(
            {
                "responsiveness": 0.5,
                "interruption_sensitivity": 0.0,
                "reminder_trigger_ms": 5000.0,
                "reminder_max_count": 0,
            }
        ),
        AgentConfigUpdate({"reminder_max_count": 3}),
        MetadataEvent({"avatar_emotion": "Angry"}),
    ]
    assert sum(m.note.startswith("malformed") for m in client.message_log) == 4


# --- keep-alive, reconnects and endings ----------------------------------------------------------


async def test_auto_reconnect_pings_every_interval_and_measures_round_trips() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, {"response_type": "config", "config": {"auto_reconnect": True}})
        while True:
            ping = await receive(ws, seen, "ping_pong")
            await send(ws, {"response_type": "ping_pong", "timestamp": ping["timestamp"]})

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        await asyncio.sleep(0.75)
        await client.close()
    pings = server.connections[0].received
    assert 3 <= len(pings) <= 12  # every 0.1 s for 0.75 s, with slack for a loaded machine
    assert all(isinstance(p["timestamp"], int) and abs(p["timestamp"] / 1000 - time.time()) < 5 for p in pings)
    assert len(client.rtt_samples_ms) >= 3
    assert all(0 <= rtt < 250 for rtt in client.rtt_samples_ms)
    assert len(server.connections) == 1


async def test_missed_pongs_reconnect_twice_then_end_with_lost_connection() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, {"response_type": "config", "config": {"auto_reconnect": True}})
        await send(ws, chunk(0, f"hello from socket {n}", True))
        while True:
            await receive(ws, seen, "ping_pong")  # never answered

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        started = time.monotonic()
        await client.start(CALL)
        events = await take(client, 2)
        elapsed = time.monotonic() - started
    assert events[0] == ResponseChunk(0, "hello from socket 1", True)
    assert isinstance(events[1], LlmEnded)
    assert events[1].reason == "error_llm_websocket_lost_connection"
    assert "ping_pong" in events[1].detail
    assert len(server.connections) == 3
    assert all(seen.received for seen in server.connections)  # each fresh socket was pinged
    assert elapsed >= 3 * 0.3
    assert [m.connection for m in client.message_log if m.direction == "from_llm"][-1] == 3


async def test_abnormal_close_reconnects_gets_fresh_config_and_resends_the_open_request() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, {"response_type": "config", "config": {"call_details": n == 2}})
        request = await receive(ws, seen, "response_required" if n == 1 else None)
        if n == 1:
            await send(ws, chunk(1, "half an ans", False))
            ws.transport.abort()  # 1006: no close frame
            return
        second = await receive(ws, seen)  # call_details (after config) and the resent request, in any order
        if request["interaction_type"] != "response_required":
            request = second
        await send(ws, chunk(0, "begin again", True))  # the new socket's begin message is stale now
        await send(ws, chunk(request["response_id"], "a fresh answer", True))

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        await client.request_response(1, TRANSCRIPT)
        events = await take(client, 2)
        assert client.config.call_details is True
        await client.close()
    assert events == [ResponseChunk(1, "half an ans", False), ResponseChunk(1, "a fresh answer", True)]
    assert len(server.connections) == 2
    assert server.connections[1].path == "/llm-websocket/call_test"
    kinds = [m["interaction_type"] for m in server.connections[1].received]
    assert sorted(kinds) == ["call_details", "response_required"]


async def test_repeated_abnormal_closes_end_with_lost_connection() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, {"response_type": "config", "config": {}})
        ws.transport.abort()

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        end = await ended(client)
    assert end.reason == "error_llm_websocket_lost_connection"
    assert "1006" in end.detail
    assert len(server.connections) == 3


async def test_close_with_1000_is_agent_hangup_without_reconnect() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, chunk(0, "Goodbye.", True))
        await ws.close(1000, "done")

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        events = await take(client, 2)
        await asyncio.sleep(0.1)
    assert events == [ResponseChunk(0, "Goodbye.", True), LlmEnded("agent_hangup", events[1].detail)]
    assert len(server.connections) == 1


async def test_binary_frame_is_corrupt_payload_and_closes_the_socket() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await ws.send(b'{"response_id": 0}')

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        end = await ended(client)
        await asyncio.sleep(0.1)
    assert end.reason == "error_llm_websocket_corrupt_payload"
    assert server.connections[0].close_code == 1007
    assert len(server.connections) == 1
    assert client.message_log[-1].note.startswith("corrupt")


async def test_non_json_text_is_corrupt_payload() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await ws.send("hello, not json")

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start(CALL)
        end = await ended(client)
    assert end.reason == "error_llm_websocket_corrupt_payload"
    assert client.message_log[-1].payload == "hello, not json"


async def test_server_that_never_accepts_ends_with_open_error_after_all_attempts() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # takes the TCP connection, never answers the handshake

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    client = CustomLlmClient(
        f"ws://127.0.0.1:{port}/llm-websocket", "call_x", open_timeout=0.3, open_attempts=3, open_retry_delay=0.1
    )
    started = time.monotonic()
    await client.start(CALL)
    elapsed = time.monotonic() - started
    events = await take(client, 1)
    for writer in accepted:
        writer.close()
    tcp.close()
    await tcp.wait_closed()
    assert len(accepted) == 3
    assert 3 * 0.3 + 2 * 0.1 <= elapsed < 3
    assert isinstance(events[0], LlmEnded) and events[0].reason == "error_llm_websocket_open"


async def test_refused_connection_is_an_open_error() -> None:
    async with ScriptedLlmServer(lambda ws, seen, n: asyncio.sleep(0)) as server:
        url = server.url
    client = CustomLlmClient(url, "call_x", open_timeout=0.3, open_retry_delay=0.01)
    await client.start(CALL)
    end = await ended(client)
    assert end.reason == "error_llm_websocket_open"
    assert "3 attempts" in end.detail


async def test_close_ends_the_event_stream_and_tells_the_server_with_1000() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, {"response_type": "config", "config": {"auto_reconnect": True}})

    async with ScriptedLlmServer(script) as server:
        client = client_for(server, pong_timeout=5)
        await client.start(CALL)
        await asyncio.sleep(0.05)
        await client.close()
        assert await take(client, 1, within=1) == []
        await asyncio.sleep(0.05)
    assert server.connections[0].close_code == 1000


async def test_failure_while_the_socket_is_up_is_a_runtime_error() -> None:
    async def script(ws: ServerConnection, seen: Seen, n: int) -> None:
        await send(ws, {"response_type": "config", "config": {"call_details": True}})

    async with ScriptedLlmServer(script) as server:
        client = client_for(server)
        await client.start({"call_id": "call_test", "not_json": object()})  # call_details cannot be encoded
        end = await ended(client)
        await asyncio.sleep(0.1)
    assert end.reason == "error_llm_websocket_runtime"
    assert server.connections[0].close_code == 1011
    assert len(server.connections) == 1
