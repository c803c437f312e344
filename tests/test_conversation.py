"""Turn-taking behaviour of the conversation engine, in real time against exact fakes."""

from typing import Any

from tests.fakes import FakeAsr, FakeResponseEngine, Harness, Reply, ScriptedCaller, Silence, Speech, Step, Until
from voxline.conversation import MARK_ORDER
from voxline.llm.interfaces import LlmEvent, MetadataEvent, ToolCallInvocation, ToolCallResult


def contents(transcript: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(u["role"], u["content"]) for u in transcript]


async def test_three_turn_conversation_in_order() -> None:
    llm = FakeResponseEngine("Hello, how can I help?", ["Reply one.", "Reply two, with a clause.", "Reply three."])
    asr = FakeAsr(["first question", "second question", "third question"])
    h = Harness(llm, asr=asr, input_rate=48_000, output_rate=24_000)
    steps: list[Step] = []
    for n in (1, 2, 3):
        steps += [Until(h.agent_stops(n)), Silence(0.1), Speech(0.3)]
    steps += [Until(h.agent_stops(4)), Silence(0.1)]
    result = await h.run(ScriptedCaller(steps, sample_rate=48_000))

    assert result.disconnection_reason == "user_hangup"
    assert contents(result.transcript) == [
        ("agent", "Hello, how can I help?"),
        ("user", "first question"),
        ("agent", "Reply one."),
        ("user", "second question"),
        ("agent", "Reply two, with a clause."),
        ("user", "third question"),
        ("agent", "Reply three."),
    ]
    assert [r.response_id for r in llm.requests] == [1, 2, 3]
    assert [len(r.transcript) for r in llm.requests] == [2, 4, 6]
    assert not any(r.reminder for r in llm.requests)
    # Words are on the call clock: increasing, within the call.
    starts = [w["start"] for u in result.transcript for w in u["words"]]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= result.duration_s
    # Frames: 20 ms at 24 kHz, response ids in order, nothing else.
    ids = [f.response_id for f in h.sink.frames]
    assert ids == sorted(ids) and set(ids) == {0, 1, 2, 3}
    assert {len(f.pcm) for f in h.sink.frames} == {480 * 2}
    assert llm.turntakings == ["agent_turn", "user_turn"] * 3 + ["agent_turn"]
    assert h.sink.event_types().count("agent_start_talking") == 4


async def test_begin_message_waits_for_its_delay() -> None:
    h = Harness(FakeResponseEngine("Hi."), agent={"begin_message_delay_ms": 300})
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1))]))
    first = h.sink.frames[0]
    assert first.response_id == 0
    assert 0.3 <= first.at - result.started_at < 0.45


async def test_empty_begin_message_waits_for_the_user() -> None:
    llm = FakeResponseEngine("", ["You spoke first."])
    h = Harness(llm, asr=FakeAsr(["hello"]))
    caller = ScriptedCaller([Silence(0.5), Speech(0.3), Until(h.agent_stops(1))])
    result = await h.run(caller)
    assert h.sink.frames[0].response_id == 1
    assert h.sink.frames[0].at > caller.speech_starts[0]
    assert contents(result.transcript) == [("user", "hello"), ("agent", "You spoke first.")]


async def test_begin_message_never_sent_means_silence_until_the_user_speaks() -> None:
    llm = FakeResponseEngine(None, ["Okay."])
    h = Harness(llm, asr=FakeAsr(["hi"]))
    result = await h.run(ScriptedCaller([Silence(0.3), Speech(0.3), Until(h.agent_stops(1))]))
    assert contents(result.transcript) == [("user", "hi"), ("agent", "Okay.")]


async def test_latency_marks_present_and_ordered() -> None:
    llm = FakeResponseEngine("Hi.", ["Sure thing, I can help."])
    h = Harness(llm, asr=FakeAsr(["help me"]))
    caller = ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3), Until(h.agent_stops(2))])
    result = await h.run(caller)
    turn = result.turns[1]
    assert turn.response_id == 1 and turn.interruption is None
    # Marks sit where speech really started/ended, not where the VAD hysteresis noticed it.
    assert abs(turn.user_speech_start - caller.speech_starts[0]) < 0.05
    assert abs(turn.user_speech_end - turn.user_speech_start - 0.3) < 0.07
    marks = turn.as_dict()
    ordered = [m for m in MARK_ORDER if m not in ("asr_final", "interruption")]
    times = [marks[m] for m in ordered]
    assert None not in times, marks
    assert times == sorted(times)
    assert turn.user_speech_end <= turn.asr_final <= turn.llm_request
    # Silence before the decision = VAD hysteresis (3 x 32 ms) + turn wait (0.1 s at responsiveness 1).
    assert 0.19 <= turn.turn_decision - turn.user_speech_end < 0.3
    assert result.turns[0].first_frame_sent is not None


async def test_low_responsiveness_waits_longer_before_answering() -> None:
    llm = FakeResponseEngine("Hi.", ["Right."])
    h = Harness(llm, asr=FakeAsr(["slow"]), agent={"responsiveness": 0.0})
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3), Until(h.agent_stops(2))]))
    turn = result.turns[1]
    assert turn.turn_decision - turn.user_speech_end >= 0.39


async def test_pause_shorter_than_turn_wait_keeps_one_turn() -> None:
    llm = FakeResponseEngine("Hi.", ["Got it."])
    h = Harness(llm, asr=FakeAsr(["my number is", "five five five"]), agent={"responsiveness": 0.0})
    steps: list[Step] = [Until(h.agent_stops(1)), Speech(0.3), Silence(0.15), Speech(0.3), Until(h.agent_stops(2))]
    result = await h.run(ScriptedCaller(steps))
    assert len(llm.requests) == 1
    assert contents(result.transcript)[1] == ("user", "my number is five five five")


async def test_tool_calls_are_woven_into_the_transcript_in_order() -> None:
    tools: list[LlmEvent] = [
        ToolCallInvocation("t1", "book", '{"day": "monday"}'),
        ToolCallResult("t1", "booked", True),
    ]
    llm = FakeResponseEngine("Hi.", [Reply("Booked for Monday.", before=[*tools, MetadataEvent({"mood": "happy"})])])
    h = Harness(llm, asr=FakeAsr(["book monday"]))
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3), Until(h.agent_stops(2))]))
    assert [i["role"] for i in result.transcript_with_tool_calls] == [
        "agent",
        "user",
        "tool_call_invocation",
        "tool_call_result",
        "agent",
    ]
    assert result.transcript_with_tool_calls[3]["successful"] is True
    assert [u["role"] for u in result.transcript] == ["agent", "user", "agent"]
    assert {"event_type": "metadata", "metadata": {"mood": "happy"}} in [e for _, e in h.sink.events]


async def test_a_tool_call_mid_reply_splits_the_agent_utterance_around_it() -> None:
    tools: list[LlmEvent] = [
        ToolCallInvocation("t1", "lookup", "{}", type="custom"),
        ToolCallResult("t1", "found", True),
    ]
    reply = Reply("One moment please. Booked for Monday.", chunks=2, chunk_delay=0.4, between=tools)
    llm = FakeResponseEngine("Hi.", [reply])
    h = Harness(llm, asr=FakeAsr(["book monday"]))
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3), Until(h.agent_stops(2))]))
    story = [(i["role"], i.get("tool_call_id", i.get("content"))) for i in result.transcript_with_tool_calls]
    assert story == [
        ("agent", "Hi."),
        ("user", "book monday"),
        ("agent", "One moment please."),
        ("tool_call_invocation", "t1"),
        ("tool_call_result", "t1"),
        ("agent", "Booked for Monday."),
    ]
    assert result.transcript_with_tool_calls[3]["type"] == "custom"
    first, second = result.transcript[2], result.transcript[3]
    assert first["metadata"] == second["metadata"] == {"response_id": 1}
    assert first["words"][-1]["end"] <= second["words"][0]["start"]


async def test_injected_context_is_a_transcript_item_and_reaches_the_llm() -> None:
    llm = FakeResponseEngine("Hi.", ["Sure."])
    h = Harness(llm, asr=FakeAsr(["hello"]))

    def inject() -> bool:
        h.conversation.add_context("The caller is a VIP.")
        return True

    steps: list[Step] = [Until(h.agent_stops(1)), Until(inject), Speech(0.3), Until(h.agent_stops(2))]
    result = await h.run(ScriptedCaller(steps))
    roles = [i["role"] for i in result.transcript_with_tool_calls]
    assert roles == ["agent", "injected", "user", "agent"]
    assert result.transcript_with_tool_calls[1]["content"] == "The caller is a VIP."
    assert [u["role"] for u in result.transcript] == ["agent", "user", "agent"]
    woven = llm.requests[0].transcript_with_tool_calls
    assert woven is not None and woven[1]["role"] == "injected"


async def test_trigger_response_asks_for_a_reply_and_cuts_the_agent_off() -> None:
    long_reply = "This is a long answer that goes on and on for quite a while before it ends. " * 3
    llm = FakeResponseEngine(long_reply, ["Here is the new answer."])
    h = Harness(llm)
    triggered: list[bool] = []

    def trigger() -> bool:
        triggered.append(h.conversation.trigger_response())
        return True

    steps: list[Step] = [Until(lambda: len(h.sink.frames_of(0)) >= 20), Until(trigger), Until(h.agent_stops(2))]
    result = await h.run(ScriptedCaller(steps))
    assert triggered == [True]
    assert len(llm.requests) == 1 and not llm.requests[0].reminder
    assert len(h.sink.clears) >= 1
    agent = [u["content"] for u in result.transcript if u["role"] == "agent"]
    assert agent[-1] == "Here is the new answer."
    assert len(agent[0]) < len(long_reply.strip())  # the begin message was cut where it stopped


async def test_streamed_reply_is_spoken_piece_by_piece() -> None:
    text = "First sentence here. Second sentence, which is longer than the first. Third."
    llm = FakeResponseEngine("Hi.", [Reply(text, chunks=6, chunk_delay=0.05)])
    h = Harness(llm, asr=FakeAsr(["go"]))
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3), Until(h.agent_stops(2))]))
    spoken = [r.text for r in h.tts.requests][1:]
    assert len(spoken) >= 3 and " ".join(spoken) == text
    assert result.transcript[-1]["content"] == text


async def test_unfinished_sounding_utterance_gets_a_longer_wait() -> None:
    llm = FakeResponseEngine("Hi.", ["Thanks."])
    h = Harness(llm, asr=FakeAsr(["my number is 555"]), knobs={"incomplete_turn_extra_s": 0.3})
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3), Until(h.agent_stops(2))]))
    turn = result.turns[1]
    # 0.1 s hysteresis + 0.1 s turn wait + 0.3 s because "... 555" sounds unfinished.
    assert 0.48 <= turn.turn_decision - turn.user_speech_end < 0.6


async def test_user_resuming_before_the_reply_plays_merges_into_one_turn() -> None:
    llm = FakeResponseEngine("Hi.", [Reply("Abandoned.", delay=0.3), "Answer to both."])
    h = Harness(llm, asr=FakeAsr(["first part.", "second part."]))
    steps: list[Step] = [Until(h.agent_stops(1)), Speech(0.3), Silence(0.25), Speech(0.3), Until(h.agent_stops(2))]
    result = await h.run(ScriptedCaller(steps))
    assert [r.response_id for r in llm.requests] == [1, 2]
    assert contents(result.transcript) == [
        ("agent", "Hi."),
        ("user", "first part. second part."),
        ("agent", "Answer to both."),
    ]
    assert {f.response_id for f in h.sink.frames} == {0, 2}


async def test_frames_are_paced_in_real_time() -> None:
    h = Harness(FakeResponseEngine("one two three four five six seven eight nine ten."))
    await h.run(ScriptedCaller([Until(h.agent_stops(1))]))
    frames = h.sink.frames_of(0)
    assert len(frames) == 50
    assert 0.95 <= frames[-1].at - frames[0].at <= 1.05
