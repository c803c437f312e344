"""Post-call analysis (`voxline.analysis.analyze_call`) against the fake OpenAI server on loopback.

The LLM path: the prompt (keys, types, choices, preset descriptions, transcript with tool calls), the
model name and options sent, lenient parsing of the answer, validation of each value, one retry, and
the fallback to the local analysis. The local path: VADER sentiment, the extractive summary, and
calls where nobody (or only the agent) spoke.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.openai_fake import FakeOpenAi, Reply, garbage, http_error, text
from voxline.analysis import DEFAULT_ANALYSIS_MODEL, AnalysisResult, analysis_model, analyze_call
from voxline.analysis.post_call import NOBODY_SPOKE
from voxline.llm.openai_chat import OpenAiChat

LOCAL_HEADLINE = "sentiment by VADER, summary extractive, call_successful and custom data not determined"

DENTIST_CALL: list[dict[str, Any]] = [
    {
        "role": "agent",
        "content": "Hello, thanks for calling Bright Smile Dental. How can I help you today?",
        "words": [],
    },
    {"role": "user", "content": "I need to move my dentist appointment from Tuesday to Friday afternoon.", "words": []},
    {"role": "tool_call_invocation", "tool_call_id": "c1", "name": "reschedule", "arguments": '{"day": "Friday"}'},
    {"role": "tool_call_result", "tool_call_id": "c1", "content": "moved to Friday 3 pm", "successful": True},
    {"role": "agent", "content": "Done. Your dentist appointment is now on Friday afternoon at 3 pm.", "words": []},
    {"role": "user", "content": "That is fantastic, thank you so much!", "words": []},
]

CUSTOM_ITEMS: list[dict[str, Any]] = [
    {"type": "string", "name": "new_day", "description": "The day the appointment moved to", "examples": ["Monday"]},
    {"type": "enum", "name": "priority", "description": "How urgent the request was", "choices": ["low", "high"]},
    {"type": "boolean", "name": "callback", "description": "Whether the user wants a callback"},
    {"type": "number", "name": "rating", "description": "The rating the user gave, 1 to 5"},
]
CUSTOM_AGENT: dict[str, Any] = {"agent_id": "agent_1", "post_call_analysis_data": CUSTOM_ITEMS}

GOOD_ANSWER: dict[str, Any] = {
    "call_summary": "The user moved a dentist appointment to Friday.",
    "call_successful": True,
    "user_sentiment": "Positive",
    "in_voicemail": False,
    "custom_analysis_data": {"new_day": "Friday", "priority": "low", "callback": False, "rating": 5},
}


def utterances(*lines: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"role": role, "content": content, "words": []} for role, content in lines]


def answer(payload: dict[str, Any]) -> Reply:
    return text(json.dumps(payload))


def in_turn(*replies: Reply) -> Callable[[dict[str, Any]], Reply]:
    """A handler answering the n-th request with the n-th reply (the last one from then on)."""
    served: list[Reply] = []

    def handler(body: dict[str, Any]) -> Reply:
        reply = replies[min(len(served), len(replies) - 1)]
        served.append(reply)
        return reply

    return handler


@pytest.fixture
def fake() -> Iterator[FakeOpenAi]:
    with FakeOpenAi() as server:
        yield server


async def analyze_with(
    fake: FakeOpenAi,
    handler: Callable[[dict[str, Any]], Reply],
    transcript: list[dict[str, Any]] = DENTIST_CALL,
    agent: dict[str, Any] = CUSTOM_AGENT,
    **options: Any,
) -> AnalysisResult:
    fake.respond(handler)
    chat = OpenAiChat(fake.base_url, "sk-test", total_timeout_s=10)
    try:
        return await analyze_call(transcript, agent, chat=chat, model=analysis_model(agent), **options)
    finally:
        await chat.aclose()


def system_prompt(fake: FakeOpenAi, index: int = 0) -> str:
    messages = fake.requests[index]["messages"]
    assert messages[0]["role"] == "system"
    return str(messages[0]["content"])


def user_prompt(fake: FakeOpenAi, index: int = 0) -> str:
    messages = fake.requests[index]["messages"]
    assert messages[-1]["role"] == "user"
    return str(messages[-1]["content"])


def notes_text(result: AnalysisResult) -> str:
    return "\n".join(result.notes)


# -- the request ----------------------------------------------------------------------------------
async def test_prompt_describes_every_key_with_its_type_and_choices(fake: FakeOpenAi) -> None:
    result = await analyze_with(fake, lambda body: answer(GOOD_ANSWER), disconnection_reason="user_hangup")

    assert result.method == "llm"
    assert result.analysis == GOOD_ANSWER
    (request,) = fake.requests
    assert request["model"] == DEFAULT_ANALYSIS_MODEL == "gpt-4.1-mini"
    assert request["temperature"] == 0
    assert request["stream"] is False
    prompt = system_prompt(fake)
    assert "one JSON object" in prompt
    assert '"call_summary" (string' in prompt
    assert '"call_successful" (boolean' in prompt
    assert '"user_sentiment" (string, exactly one of "Negative", "Positive", "Neutral", "Unknown")' in prompt
    assert '"in_voicemail" (boolean' in prompt
    assert '"custom_analysis_data" (object) with exactly these keys:' in prompt
    assert '"new_day" (string' in prompt and "The day the appointment moved to." in prompt
    assert 'Examples: "Monday".' in prompt
    assert '"priority" (string, exactly one of "low", "high"' in prompt
    assert '"callback" (boolean' in prompt
    assert '"rating" (number' in prompt and "The rating the user gave, 1 to 5." in prompt
    said = user_prompt(fake)
    assert "disconnection reason 'user_hangup'" in said
    assert "User: I need to move my dentist appointment from Tuesday to Friday afternoon." in said
    assert '[Tool call reschedule({"day": "Friday"})]' in said
    assert "[Tool result (succeeded): moved to Friday 3 pm]" in said
    assert said.index("User: I need") < said.index("[Tool call") < said.index("Agent: Done.")


async def test_system_presets_replace_the_default_instructions(fake: FakeOpenAi) -> None:
    agent = {
        "post_call_analysis_model": "gpt-4o",
        "post_call_analysis_data": [
            {"type": "system-presets", "name": "call_summary", "description": "Summarise the call in Spanish."},
            {"type": "system-presets", "name": "call_successful", "description": "True only if a booking was made."},
            {"type": "system-presets", "name": "user_sentiment", "description": "Judge only the last user turn."},
        ],
    }
    reply = {k: v for k, v in GOOD_ANSWER.items() if k != "custom_analysis_data"}
    result = await analyze_with(fake, lambda body: answer(reply), agent=agent)

    assert result.analysis == reply
    assert "custom_analysis_data" not in result.analysis
    assert fake.requests[0]["model"] == "gpt-4o"
    prompt = system_prompt(fake)
    lines = {line.split(" (", 1)[0]: line for line in prompt.splitlines() if line.startswith('- "')}
    assert set(lines) == {'- "call_summary"', '- "call_successful"', '- "user_sentiment"', '- "in_voicemail"'}
    assert "Summarise the call in Spanish." in lines['- "call_summary"']
    assert "at most 3 sentences" not in prompt  # the default summary instruction is gone
    assert "True only if a booking was made." in lines['- "call_successful"']
    assert "successful tool calls count" not in prompt
    assert "Judge only the last user turn." in lines['- "user_sentiment"']
    assert 'exactly one of "Negative", "Positive", "Neutral", "Unknown"' in lines['- "user_sentiment"']
    assert "voicemail box" in lines['- "in_voicemail"']  # no preset: the default stays


# -- parsing --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "wrap",
    [
        lambda body: f"```json\n{body}\n```",
        lambda body: f"Here is the analysis:\n```\n{body}\n```\nLet me know if you need more.",
        lambda body: f"<think>The user wants {{a summary}}.</think>\n{body}",
        lambda body: f"Sure! {body} Hope this helps.",
        lambda body: f'{body}\nAlso: {{"confidence": "high"}}',
    ],
    ids=["json-fence", "bare-fence-and-prose", "think-block-with-braces", "prose-around", "second-object-after"],
)
async def test_fenced_and_messy_json_is_parsed(fake: FakeOpenAi, wrap: Callable[[str], str]) -> None:
    body = json.dumps(GOOD_ANSWER, indent=2)
    result = await analyze_with(fake, lambda _: text(wrap(body)))

    assert result.method == "llm"
    assert result.analysis == GOOD_ANSWER
    assert len(fake.requests) == 1


async def test_values_are_validated_by_type(fake: FakeOpenAi) -> None:
    reply = {
        "call_summary": "The user rescheduled.",
        "call_successful": "yes",
        "user_sentiment": "Happy",
        "in_voicemail": False,
        "custom_analysis_data": {"new_day": "Friday", "priority": "urgent", "callback": "maybe", "rating": "3"},
    }
    result = await analyze_with(fake, lambda body: answer(reply))

    assert result.analysis == {
        "call_summary": "The user rescheduled.",
        "call_successful": True,
        "in_voicemail": False,
        "custom_analysis_data": {"new_day": "Friday", "rating": 3},
    }
    assert type(result.analysis["custom_analysis_data"]["rating"]) is int
    notes = notes_text(result)
    assert 'custom_analysis_data.priority dropped: the model\'s value "urgent" is not one of "low", "high"' in notes
    assert 'user_sentiment dropped: the model\'s value "Happy"' in notes
    assert 'custom_analysis_data.callback dropped: the model\'s value "maybe" is not a boolean' in notes


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(4.5, 4.5), ("4.5", 4.5), (" 7 ", 7), (2, 2), ("five", None), (True, None), ("3 stars", None)],
)
async def test_number_values(fake: FakeOpenAi, raw: Any, expected: Any) -> None:
    reply = {**GOOD_ANSWER, "custom_analysis_data": {"rating": raw}}
    result = await analyze_with(fake, lambda body: answer(reply))

    custom = result.analysis.get("custom_analysis_data", {})
    assert custom.get("rating") == expected
    if expected is None:
        assert "custom_analysis_data.rating dropped" in notes_text(result)
    else:
        assert type(custom["rating"]) is type(expected)


async def test_enum_and_sentiment_match_ignoring_case(fake: FakeOpenAi) -> None:
    reply = {**GOOD_ANSWER, "user_sentiment": "negative", "custom_analysis_data": {"priority": " HIGH"}}
    result = await analyze_with(fake, lambda body: answer(reply))

    assert result.analysis["user_sentiment"] == "Negative"
    assert result.analysis["custom_analysis_data"] == {"priority": "high"}


async def test_null_and_missing_values_are_left_unset_with_notes(fake: FakeOpenAi) -> None:
    reply = {"call_summary": "Short call.", "user_sentiment": "Neutral", "in_voicemail": None}
    result = await analyze_with(fake, lambda body: answer(reply))

    assert result.method == "llm"
    assert result.analysis == {"call_summary": "Short call.", "user_sentiment": "Neutral"}
    notes = notes_text(result)
    assert "call_successful not determined: missing from the model's answer" in notes
    assert "in_voicemail not determined: required, but the model returned null" in notes
    assert "custom_analysis_data.rating not determined" in notes


# -- retry and fallback ---------------------------------------------------------------------------
async def test_provider_error_is_retried_once(fake: FakeOpenAi) -> None:
    result = await analyze_with(fake, in_turn(http_error(500, "overloaded"), answer(GOOD_ANSWER)))

    assert len(fake.requests) == 2
    assert fake.requests[0] == fake.requests[1]
    assert result.method == "llm"
    assert result.analysis == GOOD_ANSWER
    assert "attempt 1 failed (LLM provider returned HTTP 500: overloaded); retrying" in notes_text(result)


async def test_unparseable_answer_is_retried_once(fake: FakeOpenAi) -> None:
    result = await analyze_with(fake, in_turn(text("I am sorry, I cannot do that."), answer(GOOD_ANSWER)))

    assert len(fake.requests) == 2
    assert result.method == "llm"
    assert result.analysis == GOOD_ANSWER
    assert "holds no JSON object" in notes_text(result)


async def test_json_without_any_expected_key_is_retried(fake: FakeOpenAi) -> None:
    result = await analyze_with(fake, in_turn(answer({"summary": "x", "ok": True}), answer(GOOD_ANSWER)))

    assert len(fake.requests) == 2
    assert result.analysis == GOOD_ANSWER


@pytest.mark.parametrize(
    ("reply", "why"),
    [(http_error(503, "down for maintenance"), "HTTP 503: down for maintenance"), (garbage(), "not JSON")],
    ids=["http-503", "garbage"],
)
async def test_repeated_failure_falls_back_to_local_analysis(fake: FakeOpenAi, reply: Reply, why: str) -> None:
    result = await analyze_with(fake, lambda body: reply)

    assert len(fake.requests) == 2
    assert result.method == "local"
    assert set(result.analysis) == {"call_summary", "user_sentiment", "in_voicemail"}
    assert result.analysis["user_sentiment"] == "Positive"
    headline = next(n for n in result.notes if n.startswith("LLM analysis with model 'gpt-4.1-mini' failed"))
    assert why in headline and "2 attempts" in headline
    assert headline.endswith(
        "sentiment by VADER, summary extractive, call_successful and custom data "
        "(new_day, priority, callback, rating) not determined"
    )


async def test_refused_request_is_not_retried(fake: FakeOpenAi) -> None:
    result = await analyze_with(fake, lambda body: http_error(401, "bad key", type="invalid_request_error"))

    assert len(fake.requests) == 1
    assert result.method == "local"
    assert "HTTP 401: bad key; not retried" in notes_text(result)


# -- the local analysis ---------------------------------------------------------------------------
async def local(transcript: list[dict[str, Any]], agent: dict[str, Any] | None = None, **kw: Any) -> AnalysisResult:
    return await analyze_call(transcript, agent or {}, chat=None, model=DEFAULT_ANALYSIS_MODEL, **kw)


async def test_no_llm_configured_says_what_was_done() -> None:
    result = await local(DENTIST_CALL)

    assert result.method == "local"
    assert result.notes[0] == f"no LLM endpoint configured: {LOCAL_HEADLINE}"
    assert "call_successful" not in result.analysis
    assert "custom_analysis_data" not in result.analysis
    assert result.analysis["in_voicemail"] is False
    assert "in_voicemail false: the user spoke" in result.notes


@pytest.mark.parametrize(
    ("user_lines", "sentiment"),
    [
        (["Wonderful, I love it.", "That is fantastic, thank you so much, you have been very helpful!"], "Positive"),
        (["I am really angry, this service is awful.", "This is the worst support I have ever had."], "Negative"),
        (["I am calling about my order from last week.", "It was shipped to the office on Main Street."], "Neutral"),
    ],
)
async def test_local_sentiment_follows_the_user(user_lines: list[str], sentiment: str) -> None:
    agent_lines = ["Hello, how can I help?", "I see. Let me check that for you."]
    transcript = utterances(
        *(
            turn
            for pair in zip(agent_lines, user_lines, strict=True)
            for turn in (("agent", pair[0]), ("user", pair[1]))
        )
    )
    result = await local(transcript)

    assert result.analysis["user_sentiment"] == sentiment
    assert f"user_sentiment {sentiment}: mean VADER compound score" in notes_text(result)


async def test_local_sentiment_ignores_the_agent() -> None:
    transcript = utterances(
        ("agent", "Wonderful! Fantastic! I love helping, this is amazing!"),
        ("user", "I am really angry, this service is awful."),
    )
    assert (await local(transcript)).analysis["user_sentiment"] == "Negative"


async def test_extractive_summary_keeps_the_key_sentences_in_order_with_speakers() -> None:
    transcript = utterances(
        ("agent", "Hi there, thanks for calling. How can I help you today?"),
        ("user", "Hello. My internet router keeps dropping the connection every evening since the storm."),
        ("agent", "Okay. Sorry to hear that."),
        ("user", "Yes. It is the router in the living room."),
        ("agent", "I will send a technician to replace the router and check the connection on Thursday evening."),
        ("user", "Great, thanks. Bye."),
    )
    result = await local(transcript)

    summary = result.analysis["call_summary"]
    assert summary.startswith("The user said: “My internet router keeps dropping the connection every evening")
    assert "the agent said: “I will send a technician to replace the router" in summary
    assert summary.index("The user said") < summary.index("the agent said")
    assert "thanks for calling" not in summary
    assert "Sorry to hear that" not in summary
    assert summary.count("said:") <= 3


async def test_extractive_summary_leaves_out_weak_sentences() -> None:
    result = await local(DENTIST_CALL)

    assert result.analysis["call_summary"] == (
        "The user said: “I need to move my dentist appointment from Tuesday to Friday afternoon.”; "
        "the agent said: “Your dentist appointment is now on Friday afternoon at 3 pm.”"
    )


async def test_long_call_summary_is_capped_at_three_sentences() -> None:
    lines = [
        ("user" if i % 2 else "agent", f"The invoice number {i} for the invoice account is wrong again.")
        for i in range(12)
    ]
    result = await local(utterances(*lines))

    assert result.analysis["call_summary"].count("invoice number") == 3


# -- calls where nobody (or only the agent) spoke -------------------------------------------------
@pytest.mark.parametrize(
    "transcript",
    [[], [{"role": "user", "content": "  ", "words": []}], [{"role": "dtmf", "digit": "1"}]],
    ids=["empty", "blank-utterance", "only-dtmf"],
)
async def test_nobody_spoke(fake: FakeOpenAi, transcript: list[dict[str, Any]]) -> None:
    result = await analyze_with(fake, lambda body: answer(GOOD_ANSWER), transcript=transcript)

    assert fake.requests == []  # nothing to analyse: no LLM request
    assert result.method == "local"
    assert result.analysis == {"call_summary": NOBODY_SPOKE, "user_sentiment": "Unknown"}
    assert result.notes[0].startswith("no LLM request made: nobody spoke")
    assert "in_voicemail not determined: the user did not speak" in result.notes


async def test_only_the_agent_spoke() -> None:
    transcript = utterances(("agent", "Hello, this is Bright Smile Dental calling about your cleaning appointment."))
    result = await local(transcript)

    assert result.analysis["call_summary"] != NOBODY_SPOKE
    assert "Bright Smile Dental calling about your cleaning appointment" in result.analysis["call_summary"]
    assert result.analysis["user_sentiment"] == "Unknown"
    assert "in_voicemail" not in result.analysis
    assert result.notes[0].startswith("no LLM endpoint configured: sentiment Unknown (no user speech)")


async def test_voicemail_disconnection_sets_in_voicemail_locally() -> None:
    transcript = utterances(("agent", "Hi, this is Bright Smile Dental, please call us back about your appointment."))
    result = await local(transcript, disconnection_reason="voicemail_reached")

    assert result.analysis["in_voicemail"] is True
