"""The EXAMPLE receptionist LLM server, driven by Voxline's own custom-LLM client.

Both hosts are exercised for real: the standalone `websockets` server, and the route mounted in
the API process (`voxline serve` in a subprocess, no API key on the socket).
"""

import asyncio
from pathlib import Path

from tests.servers import ServerProcess
from voxline.examples.receptionist import Receptionist, serve_receptionist, split_into_chunks
from voxline.llm.custom_llm import CustomLlmClient
from voxline.llm.interfaces import LlmEnded, ResponseChunk

CALL = {"call_id": "call_receptionist", "agent_id": "agent_1", "call_type": "web_call", "call_status": "registered"}


async def _reply(client: CustomLlmClient) -> tuple[str, list[ResponseChunk]]:
    """Collect one streamed reply up to content_complete."""
    chunks: list[ResponseChunk] = []
    async with asyncio.timeout(5):
        async for event in client.events():
            assert not isinstance(event, LlmEnded), event
            assert isinstance(event, ResponseChunk), event
            chunks.append(event)
            if event.content_complete:
                break
    return "".join(c.content for c in chunks), chunks


async def three_turn_conversation(llm_websocket_url: str) -> list[tuple[str, list[ResponseChunk]]]:
    """Greeting, name, day, goodbye — with a reminder in between — as the engine would drive it."""
    client = CustomLlmClient(llm_websocket_url, CALL["call_id"], ping_interval=0.1, pong_timeout=2)
    await client.start(CALL)
    transcript: list[dict[str, object]] = []
    replies = [await _reply(client)]
    transcript.append({"role": "agent", "content": replies[-1][0], "words": []})
    response_id = 0
    for said in ("My name is Ada Lovelace", None, "Thursday morning please", "No, that's all, goodbye"):
        response_id += 1
        if said is None:
            await client.request_response(response_id, transcript, reminder=True)
        else:
            transcript.append({"role": "user", "content": said, "words": []})
            await client.update(transcript, "agent_turn")
            await client.request_response(response_id, transcript)
        replies.append(await _reply(client))
        transcript.append({"role": "agent", "content": replies[-1][0], "words": []})
    await asyncio.sleep(0.3)  # let a few ping_pongs go round
    assert client.rtt_samples_ms, "the example answers ping_pong"
    assert client.config.auto_reconnect and client.config.call_details
    sent = [m.payload["interaction_type"] for m in client.message_log if m.direction == "to_llm"]
    assert sent[0] == "call_details"
    await client.close()
    return replies


def check_conversation(replies: list[tuple[str, list[ResponseChunk]]]) -> None:
    greeting, name, reminder, day, goodbye = replies
    assert "Bright Smile Dental" in greeting[0] and "name" in greeting[0]
    assert name[0].startswith("You said: My name is Ada Lovelace.")
    assert "Ada Lovelace" in name[0] and "Which day" in name[0]
    assert reminder[0].startswith("Are you still there?") and "Which day" in reminder[0]
    assert day[0].startswith("You said: Thursday morning please.") and "Thursday" in day[0]
    assert goodbye[0].startswith("You said: No, that's all, goodbye.") and "Goodbye" in goodbye[0]
    for response_id, (_, chunks) in enumerate(replies):
        assert len(chunks) >= 2, "each reply is streamed in pieces"
        assert {c.response_id for c in chunks} == {response_id}
        assert [c.content_complete for c in chunks] == [False] * (len(chunks) - 1) + [True]
        assert [c.end_call for c in chunks] == [False] * (len(chunks) - 1) + [response_id == 4]


def test_replies_are_always_split_into_two_or_more_chunks() -> None:
    assert split_into_chunks("One. Two!") == ["One. ", "Two!"]
    assert split_into_chunks("Just one sentence here") == ["Just one ", "sentence here"]
    assert len(split_into_chunks("Word")) == 2


def test_script_ends_the_call_on_goodbye_words() -> None:
    for said in ("bye", "Goodbye then", "ok that's all", "That is all."):
        assert Receptionist().reply(said)[1] is True
    assert Receptionist().reply("byeee, I mean hello")[1] is False


async def test_standalone_example_server_holds_a_three_turn_conversation_to_end_call() -> None:
    server = await serve_receptionist("127.0.0.1", 0)
    try:
        port = next(iter(server.sockets)).getsockname()[1]
        check_conversation(await three_turn_conversation(f"ws://127.0.0.1:{port}/llm-websocket/"))
    finally:
        server.close()
        await server.wait_closed()


async def test_standalone_example_server_refuses_other_paths() -> None:
    server = await serve_receptionist("127.0.0.1", 0)
    try:
        port = next(iter(server.sockets)).getsockname()[1]
        client = CustomLlmClient(f"ws://127.0.0.1:{port}/elsewhere", "c1", open_retry_delay=0.01)
        await client.start(CALL)
        async with asyncio.timeout(5):
            events = [event async for event in client.events()]
        assert isinstance(events[-1], LlmEnded) and events[-1].reason == "error_llm_websocket_open"
        assert "404" in events[-1].detail
    finally:
        server.close()
        await server.wait_closed()


def test_example_mounted_in_the_api_needs_no_api_key_and_converses(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data").start()
    try:
        url = f"ws://127.0.0.1:{srv.port}/examples/receptionist/llm-websocket"
        check_conversation(asyncio.run(three_turn_conversation(url)))
    finally:
        srv.close()
