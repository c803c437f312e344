"""The built-in prompt LLM engine on its own (no speech): what it asks a real OpenAI-protocol
server (tests/openai_fake.py, on loopback) and the events it gives the conversation engine."""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests import openai_fake as fake
from tests.tool_server import Reply, running_tool_server
from voxline.llm.interfaces import LlmEnded, LlmEvent, ResponseChunk, ToolCallInvocation, ToolCallResult
from voxline.llm.openai_chat import OpenAiChat
from voxline.llm.retell_llm import RetellLlmEngine, RetellLlmOptions
from voxline.llm.retell_prompt import INTERRUPTED_MARK

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the fixtures' HTTP clients live on the session loop
NOW_MS = 1_711_694_760_000  # Friday, March 29, 2024 06:46 UTC = Thursday, March 28, 11:46 PM PDT


@pytest.fixture(scope="module")
def provider() -> Iterator[fake.FakeOpenAi]:
    server = fake.FakeOpenAi().start()
    yield server
    server.close()


@pytest_asyncio.fixture
async def options(provider: fake.FakeOpenAi) -> AsyncIterator[RetellLlmOptions]:
    provider.respond(lambda body: fake.text("OK."))
    chat = OpenAiChat(provider.base_url, "sk-test", first_token_timeout_s=0.5, idle_timeout_s=0.5)
    async with httpx.AsyncClient() as http:
        yield RetellLlmOptions(
            chat=chat,
            http=http,
            signing_key="key_test",
            allow_private_tool_urls=True,
            model_map={"gpt-4.1": "local-model"},
            retry_delay_s=0.01,
            now_ms=lambda: NOW_MS,
        )
    await chat.aclose()


class Run:
    """An engine under test and every event it produced."""

    def __init__(self, engine: RetellLlmEngine) -> None:
        self.engine = engine
        self.events: list[LlmEvent] = []
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, call: dict[str, Any] | None = None) -> "Run":
        await self.engine.start(call or {"call_id": self.engine.call_id})
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for event in self.engine.events():
            self.events.append(event)
            self._changed.set()

    async def wait_for(self, predicate: Any, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def reply(self, response_id: int, within: float = 5.0) -> str:
        """The text of response `response_id`, once complete."""
        await self.wait_for(lambda: self.completed(response_id) is not None, within)
        return "".join(e.content for e in self.chunks(response_id))

    def chunks(self, response_id: int) -> list[ResponseChunk]:
        return [e for e in self.events if isinstance(e, ResponseChunk) and e.response_id == response_id]

    def completed(self, response_id: int) -> ResponseChunk | None:
        return next((c for c in self.chunks(response_id) if c.content_complete), None)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def close(self) -> None:
        await self.engine.close()
        if self._task is not None:
            self._task.cancel()


def engine(options: RetellLlmOptions, llm: dict[str, Any], **kwargs: Any) -> RetellLlmEngine:
    return RetellLlmEngine({"start_speaker": "agent", **llm}, "call_test", options, **kwargs)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text, "words": []}


def agent(text: str, response_id: int) -> dict[str, Any]:
    return {"role": "agent", "content": text, "words": [], "metadata": {"response_id": response_id}}


def system_prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


# -- begin message ---------------------------------------------------------------------------------


async def test_static_begin_message_is_rendered_and_needs_no_provider(
    options: RetellLlmOptions, provider: fake.FakeOpenAi
) -> None:
    before = len(provider.requests)
    run = await Run(
        engine(
            options,
            {"begin_message": "Hi {{ user_name }}, this is {{company}} on {{current_time}}. {{unknown}}"},
            dynamic_variables={"user_name": "Alice"},
        )
    ).start()
    text = await run.reply(0)
    assert text == "Hi Alice, this is {{company}} on Thursday, March 28, 2024 at 11:46 PM PDT. {{unknown}}"
    assert len(provider.requests) == before
    await run.close()


async def test_null_begin_message_is_written_by_the_model(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    provider.respond(lambda body: fake.text("Good evening, how can I help?"))
    run = await Run(engine(options, {"begin_message": None, "general_prompt": "You are a concierge."})).start()
    assert await run.reply(0) == "Good evening, how can I help?"
    body = provider.requests[-1]
    assert body["model"] == "local-model"  # gpt-4.1 by default, mapped
    assert body["stream"] is True
    assert body["messages"] == [{"role": "system", "content": "You are a concierge."}]
    await run.close()


async def test_empty_begin_message_waits_for_the_user(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    before = len(provider.requests)
    run = await Run(engine(options, {"begin_message": ""})).start()
    assert await run.reply(0) == ""
    assert len(provider.requests) == before
    await run.close()


async def test_user_first_speaks_the_begin_message_after_the_silence(options: RetellLlmOptions) -> None:
    llm = {"start_speaker": "user", "begin_message": "Hello? Anyone there?", "begin_after_user_silence_ms": 200}
    run = await Run(RetellLlmEngine(llm, "call_test", options)).start()
    await asyncio.sleep(0.1)
    assert run.chunks(0) == []
    assert await run.reply(0) == "Hello? Anyone there?"
    await run.close()


async def test_user_first_begin_message_is_dropped_once_the_user_spoke(options: RetellLlmOptions) -> None:
    llm = {"start_speaker": "user", "begin_message": "Hello? Anyone there?", "begin_after_user_silence_ms": 200}
    run = await Run(RetellLlmEngine(llm, "call_test", options)).start()
    await run.engine.update([], "user_turn")
    await asyncio.sleep(0.35)
    assert run.chunks(0) == []
    await run.close()


# -- prompts, history, variables -------------------------------------------------------------------


async def test_prompt_history_and_interrupted_turns(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    provider.respond(lambda body: fake.text("Sure, on Main Street."))
    llm = {
        "begin_message": "Welcome to the library, we are open from nine to five every day.",
        "general_prompt": "You help {{user_name}} at the library.",
        "default_dynamic_variables": {"user_name": "a visitor", "unused": "x"},
        "model_temperature": 0.4,
        "model": "gpt-5",
    }
    run = await Run(engine(options, llm, dynamic_variables={"user_name": "Bob"})).start()
    await run.reply(0)
    history = [agent("Welcome to the library, we are", 0), user("Where is the nearest branch?")]
    await run.engine.request_response(1, history, transcript_with_tool_calls=history)
    assert await run.reply(1) == "Sure, on Main Street."
    body = provider.requests[-1]
    assert body["model"] == "gpt-5"  # not in the map, no default model: sent as is
    assert body["temperature"] == 0.4
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "Welcome to the library, we are" + INTERRUPTED_MARK},
        {"role": "user", "content": "Where is the nearest branch?"},
    ]
    assert system_prompt(body).startswith("You help Bob at the library.")
    assert "cut off by the user" in system_prompt(body)
    await run.close()


async def test_model_config_and_overrides_win(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    provider.respond(lambda body: fake.text("Noted."))
    llm = {
        "begin_message": "",
        "general_prompt": "Mood: {{mood}}. Caller: {{name}}.",
        "model": "gpt-5",
        "model_config": {"type": "cascading", "primary": {"model": "gpt-4.1"}, "temperature": 0.9},
    }
    run = await Run(engine(options, llm, dynamic_variables={"name": "Ann", "mood": "calm"})).start()
    run.engine.override_dynamic_variables({"mood": "cheerful"})
    await run.engine.request_response(1, [user("Hi")], transcript_with_tool_calls=[user("Hi")])
    await run.reply(1)
    body = provider.requests[-1]
    assert (body["model"], body["temperature"]) == ("local-model", 0.9)
    assert system_prompt(body) == "Mood: cheerful. Caller: Ann."
    run.engine.override_dynamic_variables(None)  # clears the overrides
    await run.engine.request_response(2, [user("Hi")], transcript_with_tool_calls=[user("Hi")])
    await run.reply(2)
    assert system_prompt(provider.requests[-1]) == "Mood: calm. Caller: Ann."
    await run.close()


async def test_injected_context_reaches_the_system_prompt(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    provider.respond(lambda body: fake.text("Of course."))
    run = await Run(engine(options, {"begin_message": "", "general_prompt": "Be brief."})).start()
    history = [user("Hello"), {"role": "injected", "content": "The caller is a VIP member.", "time_sec": 3.2}]
    await run.engine.request_response(1, [user("Hello")], transcript_with_tool_calls=history)
    await run.reply(1)
    prompt = system_prompt(provider.requests[-1])
    assert prompt.startswith("Be brief.")
    assert "- The caller is a VIP member." in prompt
    await run.close()


# -- tools and states ------------------------------------------------------------------------------

STATES_LLM = {
    "begin_message": "",
    "general_prompt": "You book tables.",
    "starting_state": "greeting",
    "general_tools": [{"type": "end_call", "name": "end_call", "description": "Hang up."}],
    "states": [
        {
            "name": "greeting",
            "state_prompt": "Ask how many people.",
            "edges": [
                {
                    "destination_state_name": "booking",
                    "description": "Once the party size is known.",
                    "parameters": {
                        "type": "object",
                        "properties": {"party_size": {"type": "number"}},
                        "required": ["party_size"],
                    },
                }
            ],
        },
        {
            "name": "booking",
            "state_prompt": "Book a table for {{party_size}} ({{current_agent_state}} after {{previous_agent_state}}).",
            "tools": [
                {
                    "type": "extract_dynamic_variable",
                    "name": "note_details",
                    "description": "Record the details.",
                    "variables": [
                        {"type": "string", "name": "guest_name", "description": "The guest's name"},
                        {"type": "boolean", "name": "outdoor", "description": "Outdoor seating wanted"},
                    ],
                }
            ],
        },
    ],
}


async def test_state_transition_with_parameters_then_speaks_in_the_new_state(
    options: RetellLlmOptions, provider: fake.FakeOpenAi
) -> None:
    def reply(body: dict[str, Any]) -> fake.Reply:
        if "transition_to_booking" in tool_names(body):
            return fake.tool_call("transition_to_booking", {"party_size": 4}, id="call_t1", split=4)
        return fake.text("Great, a table for four.")

    provider.respond(reply)
    run = await Run(engine(options, STATES_LLM)).start()
    await run.engine.request_response(1, [user("Four of us")], transcript_with_tool_calls=[user("Four of us")])
    assert await run.reply(1) == "Great, a table for four."
    first, second = provider.requests[-2:]
    assert tool_names(first) == ["end_call", "transition_to_booking"]
    assert system_prompt(first) == "You book tables.\n\nAsk how many people."
    assert tool_names(second) == ["end_call", "note_details"]
    assert system_prompt(second) == "You book tables.\n\nBook a table for 4 (booking after greeting)."
    assert second["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_t1",
                    "type": "function",
                    "function": {"name": "transition_to_booking", "arguments": '{"party_size": 4}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_t1", "content": "Moved from state greeting to state booking."},
    ]
    [invocation] = run.of(ToolCallInvocation)
    assert (invocation.tool_call_id, invocation.name, invocation.type) == ("call_t1", "transition_to_booking", None)
    assert [(r.tool_call_id, r.successful) for r in run.of(ToolCallResult)] == [("call_t1", True)]
    assert run.engine.state == "booking"
    assert run.engine.collected_dynamic_variables() == {"party_size": "4", "current_agent_state": "booking"}
    await run.close()


async def test_extract_dynamic_variable_collects_strings(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    def reply(body: dict[str, Any]) -> fake.Reply:
        if body["messages"][-1]["role"] == "user":
            return fake.tool_call("note_details", {"guest_name": "Ada", "outdoor": True}, id="call_x")
        return fake.text("Thanks Ada.")

    provider.respond(reply)
    run = await Run(engine(options, STATES_LLM, starting_state="booking")).start()
    await run.engine.request_response(1, [user("I'm Ada")], transcript_with_tool_calls=[user("I'm Ada")])
    assert await run.reply(1) == "Thanks Ada."
    assert tool_names(provider.requests[-2]) == ["end_call", "note_details"]  # starting_state from the call
    schema = provider.requests[-2]["tools"][1]["function"]["parameters"]
    assert schema["properties"]["outdoor"] == {"type": "boolean", "description": "Outdoor seating wanted"}
    assert run.engine.collected == {"guest_name": "Ada", "outdoor": "true"}
    [invocation] = run.of(ToolCallInvocation)
    assert invocation.type == "extract_dynamic_variable"
    await run.close()


async def test_end_call_speaks_then_hangs_up(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    provider.respond(lambda body: fake.tool_call("end_call", {}, id="call_end", text_before="Goodbye, take care!"))
    run = await Run(engine(options, STATES_LLM)).start()
    await run.engine.request_response(1, [user("Bye")], transcript_with_tool_calls=[user("Bye")])
    assert await run.reply(1) == "Goodbye, take care!"
    final = run.completed(1)
    assert final is not None and final.end_call and final.transfer_number is None
    assert [(i.name, i.type) for i in run.of(ToolCallInvocation)] == [("end_call", "end_call")]
    assert len(provider.requests) >= 1 and run.of(LlmEnded) == []
    await run.close()


async def test_transfer_ends_a_web_call_after_the_execution_message(
    options: RetellLlmOptions, provider: fake.FakeOpenAi
) -> None:
    llm = {
        "begin_message": "",
        "general_tools": [
            {
                "type": "transfer_call",
                "name": "to_front_desk",
                "transfer_destination": {"type": "predefined", "number": "+1{{desk}}"},
                "transfer_option": {"type": "cold_transfer"},
                "speak_during_execution": True,
                "execution_message_description": "Connecting you to the front desk now.",
                "execution_message_type": "static_text",
            }
        ],
    }
    provider.respond(lambda body: fake.tool_call("to_front_desk", {}, id="call_tr"))
    run = await Run(engine(options, llm, dynamic_variables={"desk": "4155550100"})).start()
    await run.engine.request_response(1, [user("A human please")], transcript_with_tool_calls=[user("x")])
    assert (await run.reply(1)).strip() == "Connecting you to the front desk now."
    final = run.completed(1)
    assert final is not None and final.transfer_number == "+14155550100" and not final.end_call
    [result] = run.of(ToolCallResult)
    assert "+14155550100" in result.content
    await run.close()


async def test_press_digit_is_recorded(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    llm = {"begin_message": "", "general_tools": [{"type": "press_digit", "name": "press"}]}
    provider.respond(lambda body: fake.tool_call("press", {"digit": "5"}, id="call_d"))
    run = await Run(engine(options, llm)).start()
    await run.engine.request_response(1, [user("Press five")], transcript_with_tool_calls=[user("Press five")])
    await run.reply(1)
    assert [(r.tool_call_id, r.content) for r in run.of(ToolCallResult)] == [("call_d", "Pressed 5.")]
    assert [i.type for i in run.of(ToolCallInvocation)] == ["press_digit"]
    await run.close()


async def test_bad_tool_calls_are_reported_back_to_the_model(
    options: RetellLlmOptions, provider: fake.FakeOpenAi
) -> None:
    def reply(body: dict[str, Any]) -> fake.Reply:
        if body["messages"][-1]["role"] == "user":
            return fake.tool_calls([{"name": "no_such_tool", "arguments": {}, "id": "call_a"}])
        return fake.text("Sorry about that.")

    provider.respond(reply)
    run = await Run(engine(options, {"begin_message": ""})).start()
    await run.engine.request_response(1, [user("Hi")], transcript_with_tool_calls=[user("Hi")])
    assert await run.reply(1) == "Sorry about that."
    assert provider.requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_a",
        "content": "There is no tool named no_such_tool.",
    }
    await run.close()


async def test_const_parameters_are_hidden_from_the_model(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    llm = {
        "begin_message": "",
        "general_tools": [
            {
                "type": "custom",
                "name": "lookup",
                "description": "Look up {{thing}}.",
                "url": "http://127.0.0.1:9/lookup",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "What to look up for {{thing}}"},
                        "tenant": {"type": "string", "const": "{{tenant}}"},
                    },
                    "required": ["query", "tenant"],
                },
            }
        ],
    }
    provider.respond(lambda body: fake.text("Hello."))
    run = await Run(engine(options, llm, dynamic_variables={"thing": "books", "tenant": "t1"})).start()
    await run.engine.request_response(1, [user("Hi")], transcript_with_tool_calls=[user("Hi")])
    await run.reply(1)
    [tool] = provider.requests[-1]["tools"]
    assert tool["function"]["description"] == "Look up books."
    assert tool["function"]["parameters"] == {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to look up for books"}},
        "required": ["query"],
    }
    await run.close()


# -- provider failures -----------------------------------------------------------------------------


async def test_a_failed_first_attempt_is_retried_once(options: RetellLlmOptions, provider: fake.FakeOpenAi) -> None:
    replies = iter([fake.http_error(503, "overloaded"), fake.text("Second time lucky.")])
    provider.respond(lambda body: next(replies))
    run = await Run(engine(options, {"begin_message": ""})).start()
    await run.engine.request_response(1, [user("Hi")], transcript_with_tool_calls=[user("Hi")])
    assert await run.reply(1) == "Second time lucky."
    assert run.of(LlmEnded) == []
    assert [e["kind"] for e in run.engine.log if e["kind"] in ("retry", "error")] == ["retry"]
    await run.close()


async def test_a_stream_dying_mid_reply_ends_the_turn_with_what_was_said(
    options: RetellLlmOptions, provider: fake.FakeOpenAi
) -> None:
    replies = iter([fake.die(after_text="We open at nine"), fake.text("Anything else?")])
    provider.respond(lambda body: next(replies))
    run = await Run(engine(options, {"begin_message": ""})).start()
    await run.engine.request_response(1, [user("When?")], transcript_with_tool_calls=[user("When?")])
    assert await run.reply(1) == "We open at nine"  # not retried: that would repeat what was said
    await run.engine.request_response(2, [user("Ok")], transcript_with_tool_calls=[user("Ok")])
    assert await run.reply(2) == "Anything else?"
    assert run.of(LlmEnded) == []
    await run.close()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: fake.stall(after_text="", seconds=5), id="stall"),
        pytest.param(fake.garbage, id="garbage"),
        pytest.param(lambda: fake.http_error(500, "boom"), id="http-500"),
    ],
)
async def test_a_provider_that_keeps_failing_ends_the_call(
    options: RetellLlmOptions, provider: fake.FakeOpenAi, bad: Any
) -> None:
    provider.respond(lambda body: bad())
    run = await Run(engine(options, {"begin_message": ""})).start()
    await run.engine.request_response(1, [user("Hi")], transcript_with_tool_calls=[user("Hi")])
    await run.wait_for(lambda: bool(run.of(LlmEnded)), within=5)
    [ended] = run.of(LlmEnded)
    assert ended.reason == "error_retell"
    assert "2 times in a row" in ended.detail
    await run.close()


async def test_an_unconfigured_endpoint_ends_the_call_at_once(options: RetellLlmOptions) -> None:
    unconfigured = RetellLlmOptions(chat=None, http=options.http, signing_key="k")
    run = await Run(RetellLlmEngine({"begin_message": "Hi"}, "call_test", unconfigured)).start()
    await run.wait_for(lambda: bool(run.of(LlmEnded)))
    assert run.of(LlmEnded)[0].reason == "error_retell"
    assert "VOXLINE_LLM_BASE_URL" in run.of(LlmEnded)[0].detail
    await run.close()


async def test_a_newer_request_supersedes_a_reply_in_progress(
    options: RetellLlmOptions, provider: fake.FakeOpenAi
) -> None:
    def reply(body: dict[str, Any]) -> fake.Reply:
        if body["messages"][-1]["content"] == "first":
            return fake.stall(after_text="Let me", seconds=3)
        return fake.text("Second answer.")

    provider.respond(reply)
    run = await Run(engine(options, {"begin_message": ""})).start()
    await run.engine.request_response(1, [user("first")], transcript_with_tool_calls=[user("first")])
    await run.wait_for(lambda: bool(run.chunks(1)))
    await run.engine.request_response(2, [user("second")], transcript_with_tool_calls=[user("second")])
    assert await run.reply(2) == "Second answer."
    await asyncio.sleep(0.6)  # past the idle timeout: the cancelled reply must not report anything
    assert run.completed(1) is None
    assert run.of(LlmEnded) == []
    await run.close()


# -- custom tools and the address guard ------------------------------------------------------------


def lookup_llm(url: str) -> dict[str, Any]:
    return {
        "begin_message": "",
        "general_tools": [
            {
                "type": "custom",
                "name": "lookup",
                "url": url,
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "speak_after_execution": True,
            }
        ],
    }


def call_then_answer(body: dict[str, Any]) -> fake.Reply:
    if body["messages"][-1]["role"] == "user":
        return fake.tool_call("lookup", {"q": "hours"}, id="call_l")
    return fake.text("Done.")


async def test_a_tool_url_on_a_private_address_is_refused_reported_and_logged(
    options: RetellLlmOptions, provider: fake.FakeOpenAi, caplog: pytest.LogCaptureFixture
) -> None:
    with running_tool_server() as tools:
        guarded = RetellLlmOptions(
            chat=options.chat, http=options.http, signing_key="k", allow_private_tool_urls=False, retry_delay_s=0.01
        )
        provider.respond(call_then_answer)
        run = await Run(RetellLlmEngine(lookup_llm(tools.url + "/hours"), "call_ssrf", guarded)).start()
        await run.engine.request_response(1, [user("Hours?")], transcript_with_tool_calls=[user("Hours?")])
        assert await run.reply(1) == "Done."
        assert tools.requests == []  # nothing reached the private address
        tool_message = provider.requests[-1]["messages"][-1]
        assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_l"
        assert "refused" in tool_message["content"] and "127.0.0.1" in tool_message["content"]
        [result] = run.of(ToolCallResult)
        assert result.successful is False
        assert any("call_ssrf" in r.getMessage() and "lookup" in r.getMessage() for r in caplog.records)
        await run.close()


async def test_a_custom_tool_result_and_variables_reach_the_model(
    options: RetellLlmOptions, provider: fake.FakeOpenAi
) -> None:
    with running_tool_server() as tools:
        tools.script(Reply(body='{"hours": {"open": "9am"}}'))
        provider.respond(call_then_answer)
        llm = lookup_llm(tools.url + "/hours")
        llm["general_tools"][0]["response_variables"] = {"opens_at": "hours.open"}
        run = await Run(engine(options, llm)).start({"call_id": "call_test", "agent_id": "agent_x"})
        history = [user("Hours?")]
        await run.engine.request_response(1, history, transcript_with_tool_calls=history)
        assert await run.reply(1) == "Done."
        [seen] = tools.requests
        body = json.loads(seen.text)
        assert body["args"] == {"q": "hours"}
        assert body["call"]["agent_id"] == "agent_x"
        assert body["call"]["transcript_object"] == history
        assert provider.requests[-1]["messages"][-1]["content"] == '{"hours": {"open": "9am"}}'
        assert run.engine.collected == {"opens_at": "9am"}
        await run.close()


async def test_a_prompted_execution_message_is_written_by_the_model_while_the_tool_runs(
    options: RetellLlmOptions, provider: fake.FakeOpenAi
) -> None:
    with running_tool_server() as tools:
        tools.script(Reply(body="sunny", delay=0.5))
        llm = lookup_llm(tools.url + "/weather")
        llm["general_tools"][0].update(
            speak_during_execution=True, execution_message_description="Tell them you are checking the weather."
        )

        def reply(body: dict[str, Any]) -> fake.Reply:
            message = body["messages"][-1]
            if message["role"] == "user" and "checking the weather" in message["content"]:
                return fake.text("Let me look that up.")
            if message["role"] == "user":
                return fake.tool_call("lookup", {"q": "weather"}, id="call_w")
            return fake.text("It is sunny.")

        provider.respond(reply)
        run = await Run(engine(options, llm)).start()
        await run.engine.request_response(1, [user("Weather?")], transcript_with_tool_calls=[user("Weather?")])
        assert await run.reply(1) == "Let me look that up. It is sunny."
        kinds = [type(e).__name__ for e in run.events if not isinstance(e, ResponseChunk) or e.content]
        # the execution message is spoken between the invocation and the result
        assert kinds[:4] == ["ToolCallInvocation", "ResponseChunk", "ResponseChunk", "ResponseChunk"]
        assert kinds.index("ToolCallResult") > kinds.index("ResponseChunk")
        instruction = provider.requests[-2]["messages"]
        assert instruction[-1]["content"].startswith("You are about to run the tool `lookup`.")
        await run.close()


async def test_a_call_created_in_a_state_starts_there() -> None:
    from types import SimpleNamespace

    from voxline.calls.live import response_engine_for

    record = SimpleNamespace(
        call_id="call_s",
        dynamic_variables={"party_size": "2"},
        config={"agent": {"response_engine": {"type": "retell-llm", "llm_id": "l"}}, "llm": STATES_LLM},
    )
    options = RetellLlmOptions(chat=None, http=None, signing_key="k")  # type: ignore[arg-type]
    assert response_engine_for(record, lambda: options).state == "greeting"  # type: ignore[arg-type, attr-defined]
    record.config["current_state"] = "booking"
    assert response_engine_for(record, lambda: options).state == "booking"  # type: ignore[arg-type, attr-defined]
    record.config["current_state"] = "no_such_state"
    assert response_engine_for(record, lambda: options).state == "greeting"  # type: ignore[arg-type, attr-defined]
