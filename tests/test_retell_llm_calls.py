"""Retell LLM agents in whole live calls: a real `voxline serve` with the real speech models, an
OpenAI-protocol server of the tests' own as the LLM endpoint (tests/openai_fake.py), a tool
author's HTTP server (tests/tool_server.py), a scripted caller speaking flite speech, and the
official `retell-sdk` creating the LLM, the agent and the calls."""

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from retell.lib.webhook_auth import verify

from tests import openai_fake as fake
from tests.caller import WebCaller
from tests.live_helpers import agent_turn_done, sdk, socket_url
from tests.servers import ServerProcess
from tests.tool_server import Reply, ToolServer, running_tool_server

pytestmark = pytest.mark.slow
RATE = 16_000


@pytest.fixture(scope="module")
def tools() -> Iterator[ToolServer]:
    with running_tool_server() as server:
        yield server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, provider: fake.FakeOpenAi) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("retell-llm"),
        env_overrides={
            "VOXLINE_PRELOAD_SPEECH": "true",
            "VOXLINE_LLM_BASE_URL": provider.base_url,
            "VOXLINE_LLM_API_KEY": "sk-local-test",
            "VOXLINE_LLM_MODELS": json.dumps({"gpt-4.1-mini": "fake-small"}),
            "VOXLINE_LLM_FIRST_TOKEN_TIMEOUT_MS": "1500",
            "VOXLINE_LLM_IDLE_TIMEOUT_MS": "1500",
            "VOXLINE_ALLOW_PRIVATE_TOOL_URLS": "true",  # the tool server is on loopback
        },
    )
    try:
        yield server.start(timeout=90)
    finally:
        server.close()


def create_call(server: ServerProcess, llm: dict[str, Any], **call: Any) -> tuple[str, str]:
    """An LLM, an agent on it and a v3 web call, all through the official SDK: (call_id, token)."""
    with sdk(server) as client:
        created_llm = client.llm.create(**llm)
        agent = client.agent.create(
            voice_id="piper-joe",
            response_engine={"type": "retell-llm", "llm_id": created_llm.llm_id},
            interruption_sensitivity=0.9,
        )
        web_call = client.call.create_web_call(agent_id=agent.agent_id, **call)
    return web_call.call_id, web_call.access_token


async def ended_call(server: ServerProcess, call_id: str) -> dict[str, Any]:
    with sdk(server) as client:
        for _ in range(100):
            call = client.call.retrieve(call_id)
            if call.call_status not in ("registered", "ongoing"):
                return call.model_dump(mode="json", exclude_unset=True)
            await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} never ended")


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


def last(body: dict[str, Any]) -> dict[str, Any]:
    return body["messages"][-1]  # type: ignore[no-any-return]


BOOKING_LLM: dict[str, Any] = {
    "model": "gpt-4.1-mini",
    "general_prompt": "You are the host at {{restaurant}}. The caller is {{user_name}}.",
    "begin_message": "Hi {{user_name}}, thanks for calling {{restaurant}}.",
    "default_dynamic_variables": {"restaurant": "Chez Test", "user_name": "there"},
    "starting_state": "greeting",
    "general_tools": [{"type": "end_call", "name": "end_call", "description": "Hang up after saying goodbye."}],
    "states": [
        {
            "name": "greeting",
            "state_prompt": "Find out how many people are coming.",
            "edges": [
                {
                    "destination_state_name": "booking",
                    "description": "When the party size is known.",
                    "parameters": {
                        "type": "object",
                        "properties": {"party_size": {"type": "number", "description": "How many people"}},
                        "required": ["party_size"],
                    },
                }
            ],
        },
        {
            "name": "booking",
            "state_prompt": "Book a table for {{party_size}} people.",
            "tools": [
                {
                    "type": "custom",
                    "name": "check_table",
                    "description": "Find a free table at {{restaurant}}.",
                    "url": "{{tool_base}}/tables/{{branch}}",
                    "method": "POST",
                    "headers": {"X-Branch": "{{branch}}"},
                    "query_params": {"party": "{{party_size}}"},
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "time": {"type": "string", "description": "When"},
                            "restaurant": {"type": "string", "const": "{{restaurant}} {{branch}}"},
                        },
                        "required": ["time", "restaurant"],
                    },
                    "response_variables": {"table_id": "table.id"},
                    "speak_during_execution": True,
                    "execution_message_type": "static_text",
                    "execution_message_description": "One moment while I check.",
                    "speak_after_execution": True,
                    "timeout_ms": 5000,
                }
            ],
        },
    ],
}


async def test_a_booking_call_runs_states_tools_and_variables_end_to_end(
    live_server: ServerProcess, provider: fake.FakeOpenAi, tools: ToolServer
) -> None:
    def reply(body: dict[str, Any]) -> fake.Reply:
        message = last(body)
        if message["role"] == "tool" and message["tool_call_id"] == "call_move":
            return fake.tool_call("check_table", {"time": "seven pm"}, id="call_check", split=5)
        if message["role"] == "tool" and message["tool_call_id"] == "call_check":
            return fake.text("You are booked at table twelve. Anything else?")
        if "transition_to_booking" in tool_names(body):
            return fake.tool_call("transition_to_booking", {"party_size": 4}, id="call_move", split=4)
        if message["role"] == "user":
            return fake.tool_call("end_call", {}, id="call_bye", text_before="Goodbye, enjoy your dinner!")
        return fake.text("Sorry, could you say that again?")

    provider.respond(reply)
    tools.reset().script(Reply(body='{"table": {"id": 12, "seats": 4}, "note": "window seat"}', delay=0.8))
    first_request = len(provider.requests)
    call_id, token = create_call(
        live_server,
        BOOKING_LLM,
        retell_llm_dynamic_variables={"user_name": "Alice", "branch": "downtown", "tool_base": tools.url},
    )

    async with WebCaller(socket_url(live_server), token, RATE) as caller:
        greeted = await agent_turn_done(caller, 0.0)
        await caller.say("Hello, I would like a table for four people tonight please.")
        booked = await agent_turn_done(caller, greeted)
        await asyncio.sleep(0.3)
        await caller.say("No thank you, that is all.")
        async with asyncio.timeout(30):
            await caller.wait_ended()
    call = await ended_call(live_server, call_id)
    requests = provider.requests[first_request:]

    # The begin message, with the call's variables over the LLM's defaults.
    story = call["transcript_with_tool_calls"]
    assert story[0]["role"] == "agent"
    assert story[0]["content"] == "Hi Alice, thanks for calling Chez Test."

    # First request: the greeting state, its edge as a tool, the prompt rendered, the model mapped.
    first = requests[0]
    assert first["model"] == "fake-small"
    assert first["messages"][0]["content"] == (
        "You are the host at Chez Test. The caller is Alice.\n\nFind out how many people are coming."
    )
    assert tool_names(first) == ["end_call", "transition_to_booking"]
    assert first["messages"][1] == {"role": "assistant", "content": "Hi Alice, thanks for calling Chez Test."}
    assert first["messages"][2]["role"] == "user"
    assert {"table", "four", "people"} <= set(re.findall(r"[a-z]+", first["messages"][2]["content"].lower()))

    # After the transition: the booking state's prompt with the edge parameter, and its tool.
    second = requests[1]
    assert second["messages"][0]["content"].endswith("Book a table for 4 people.")
    assert tool_names(second) == ["end_call", "check_table"]
    check = second["tools"][1]["function"]
    assert check["description"] == "Find a free table at Chez Test."
    assert list(check["parameters"]["properties"]) == ["time"]  # the const is the platform's to fill

    # The tool author's server saw a signed request with every variable substituted.
    [seen] = tools.requests
    assert (seen.method, seen.path, seen.query) == ("POST", "/tables/downtown", {"party": ["4"]})
    assert seen.headers["x-branch"] == "downtown"
    assert seen.headers["content-type"] == "application/json"
    assert verify(seen.text, api_key=live_server.api_key, signature=seen.headers["x-retell-signature"])
    body = json.loads(seen.text)
    assert body["name"] == "check_table"
    assert body["args"] == {"time": "seven pm", "restaurant": "Chez Test downtown"}
    assert body["call"]["call_id"] == call_id

    # The result went back to the model, which then spoke in the same turn.
    third = requests[2]
    assert third["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_check",
        "content": '{"table": {"id": 12, "seats": 4}, "note": "window seat"}',
    }

    # The whole story, in order, with the right ids.
    roles = [(item["role"], item.get("tool_call_id") or item.get("content", "")) for item in story]
    assert roles[0] == ("agent", "Hi Alice, thanks for calling Chez Test.")
    assert roles[1][0] == "user"
    assert roles[2:6] == [
        ("tool_call_invocation", "call_move"),
        ("tool_call_result", "call_move"),
        ("tool_call_invocation", "call_check"),
        ("agent", "One moment while I check."),
    ]
    assert roles[6:8] == [
        ("tool_call_result", "call_check"),
        ("agent", "You are booked at table twelve. Anything else?"),
    ]
    assert roles[8][0] == "user"
    assert roles[9:] == [
        ("agent", "Goodbye, enjoy your dinner!"),
        ("tool_call_invocation", "call_bye"),
        ("tool_call_result", "call_bye"),
    ]
    invocations = {i["tool_call_id"]: i for i in story if i["role"] == "tool_call_invocation"}
    assert invocations["call_move"]["name"] == "transition_to_booking"
    assert json.loads(invocations["call_move"]["arguments"]) == {"party_size": 4}
    assert invocations["call_check"]["type"] == "custom"
    assert invocations["call_bye"]["type"] == "end_call"
    # transcript_object is the same conversation without the tool items
    assert [u["content"] for u in call["transcript_object"]] == [
        item["content"] for item in story if item["role"] in ("agent", "user")
    ]
    assert call["transcript"].startswith("Agent: Hi Alice, thanks for calling Chez Test.\nUser: ")

    # Ended by the end_call tool, after the goodbye was spoken; variables collected on the way.
    assert (call["call_status"], call["disconnection_reason"]) == ("ended", "agent_hangup")
    assert caller.events("agent_stop_talking")[-1]  # the goodbye finished playing
    assert call["collected_dynamic_variables"] == {
        "party_size": "4",
        "table_id": "12",
        "current_agent_state": "booking",
    }
    assert booked > greeted


async def test_update_live_call_injects_context_overrides_variables_and_triggers_a_reply(
    live_server: ServerProcess, provider: fake.FakeOpenAi
) -> None:
    provider.respond(lambda body: fake.text("Of course, happy to help."))
    llm = {
        "general_prompt": "Speak in a {{tone}} tone.",
        "begin_message": "Hello, how can I help?",
        "default_dynamic_variables": {"tone": "neutral"},
        "starting_state": "intro",
        "states": [{"name": "intro", "state_prompt": "Introduce yourself."}, {"name": "help", "state_prompt": "Help."}],
    }
    call_id, token = create_call(
        live_server,
        llm,
        current_state="help",
        agent_override={"retell_llm": {"begin_message": "Hello from the override, how can I help?"}},
    )
    before = len(provider.requests)
    async with WebCaller(socket_url(live_server), token, RATE) as caller:
        greeted = await agent_turn_done(caller, 0.0)
        with sdk(live_server) as client:
            result = client.call.update_live(
                call_id,
                call_control={"additional_context": "The caller is a premium member.", "trigger_response": True},
                fields_to_override={"override_dynamic_variables": {"tone": "warm"}},
            )
        assert result.success is True
        await agent_turn_done(caller, greeted)
        with sdk(live_server) as client:
            client.call.stop(call_id)
        async with asyncio.timeout(15):
            await caller.wait_ended()
    call = await ended_call(live_server, call_id)
    [request] = [r for r in provider.requests[before:] if r.get("stream")]  # (not the post-call analysis)
    system = request["messages"][0]["content"]
    assert system.startswith("Speak in a warm tone.\n\nHelp.")  # started in the call's current_state
    assert "- The caller is a premium member." in system
    story = call["transcript_with_tool_calls"]
    assert [i["role"] for i in story] == ["agent", "injected", "agent"]
    assert story[0]["content"] == "Hello from the override, how can I help?"
    assert story[1]["content"] == "The caller is a premium member."
    assert story[0]["words"][-1]["end"] <= story[1]["time_sec"] <= story[2]["words"][0]["start"]
    assert story[2]["content"] == "Of course, happy to help."
    assert call["disconnection_reason"] == "manual_stopped"


async def test_update_live_call_refuses_a_call_that_is_not_ongoing(live_server: ServerProcess) -> None:
    call_id, _ = create_call(live_server, {"begin_message": "Hi."})
    with sdk(live_server) as client:
        from retell import BadRequestError

        with pytest.raises(BadRequestError) as refused:
            client.call.update_live(call_id, call_control={"trigger_response": True})
    assert "not ongoing" in str(refused.value.body)


async def test_a_provider_that_keeps_failing_ends_the_call_with_the_reason(
    live_server: ServerProcess, provider: fake.FakeOpenAi
) -> None:
    provider.respond(lambda body: fake.stall(after_text="", seconds=10))
    call_id, token = create_call(live_server, {"begin_message": None, "general_prompt": "Greet the caller."})
    started = time.monotonic()
    async with WebCaller(socket_url(live_server), token, RATE) as caller:
        async with asyncio.timeout(20):
            await caller.wait_ended()
    call = await ended_call(live_server, call_id)
    assert (call["call_status"], call["disconnection_reason"]) == ("error", "error_retell")
    assert time.monotonic() - started < 10  # two 1.5 s first-token timeouts, not the provider's 10 s stall
    log = "".join(live_server.output)
    assert f"call {call_id}: the built-in LLM ends the call (error_retell): LLM provider failed 2 times" in log


async def test_a_garbled_reply_mid_call_ends_only_that_turn(
    live_server: ServerProcess, provider: fake.FakeOpenAi
) -> None:
    replies = iter([fake.die(after_text="We open at nine. And"), fake.text("Anything else?")])
    provider.respond(lambda body: next(replies, fake.text("Bye.")))
    call_id, token = create_call(live_server, {"begin_message": "Library, hello."})
    async with WebCaller(socket_url(live_server), token, RATE) as caller:
        greeted = await agent_turn_done(caller, 0.0)
        await caller.say("When do you open tomorrow?")
        first = await agent_turn_done(caller, greeted)
        await caller.say("Thanks a lot.")
        await agent_turn_done(caller, first)
        with sdk(live_server) as client:
            client.call.stop(call_id)
        async with asyncio.timeout(15):
            await caller.wait_ended()
    call = await ended_call(live_server, call_id)
    agent_lines = [u["content"] for u in call["transcript_object"] if u["role"] == "agent"]
    assert agent_lines == ["Library, hello.", "We open at nine. And", "Anything else?"]
    assert call["disconnection_reason"] == "manual_stopped"


async def test_without_an_endpoint_a_retell_llm_call_ends_with_a_clear_reason(make_server: Any) -> None:
    server = make_server().start()
    call_id, token = create_call(server, {"begin_message": "Hi."})
    async with WebCaller(socket_url(server), token, RATE) as caller:
        async with asyncio.timeout(20):
            await caller.wait_ended()
    call = await ended_call(server, call_id)
    assert (call["call_status"], call["disconnection_reason"]) == ("error", "error_retell")
    assert f"call {call_id}: the built-in LLM ends the call (error_retell)" in "".join(server.output)
    assert "VOXLINE_LLM_BASE_URL" in "".join(server.output)
