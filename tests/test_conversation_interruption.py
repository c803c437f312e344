"""Barge-in, noise, interruption sensitivity and reminders."""

import asyncio
import itertools
from typing import Any

import pytest

from tests.fakes import FakeAsr, FakeResponseEngine, Harness, Reply, ScriptedCaller, Silence, Speech, Step, Until
from voxline.llm.interfaces import AgentConfigUpdate, AgentInterrupt, ResponseChunk

LONG = " ".join(f"word{i}." if i % 3 == 2 else f"word{i}" for i in range(30))
"""Ten three-word sentences: 3 s of agent speech with the fake TTS (0.1 s per word)."""


async def test_user_barge_in_clears_within_200ms_and_truncates_agent_turn() -> None:
    llm = FakeResponseEngine(Reply(LONG, chunks=10, chunk_delay=0.1), ["Okay, stopping."])
    h = Harness(llm, asr=FakeAsr(["wait stop"]))
    caller = ScriptedCaller(
        [Until(lambda: len(h.sink.frames_of(0)) >= 25), Speech(0.5), Until(h.agent_stops(2)), Silence(0.1)]
    )
    result = await h.run(caller)

    assert len(h.sink.clears) == 1
    cleared = h.sink.clears[0]
    assert cleared - caller.speech_starts[0] <= 0.2
    assert not [f for f in h.sink.frames_of(0) if f.at > cleared], "stale audio after clear"
    # The agent's turn is cut to the words whose audio was sent.
    agent0 = result.transcript[0]
    said = agent0["content"].split()
    assert 2 <= len(said) < 30
    assert said == LONG.split()[: len(said)]
    assert len(said) <= len(h.sink.frames_of(0)) * 0.02 / 0.1
    assert [w["word"] for w in agent0["words"]] == said
    # The LLM heard about it, and its next request carries the truncated turn.
    assert "user_turn" in llm.turntakings
    assert llm.requests[0].transcript[0]["content"] == agent0["content"]
    assert [(u["role"], u["content"]) for u in result.transcript[1:]] == [
        ("user", "wait stop"),
        ("agent", "Okay, stopping."),
    ]
    assert result.turns[0].interruption is not None
    assert {f.response_id for f in h.sink.frames} == {0, 1}
    # The begin message was still streaming: its later chunks were dropped, never synthesized.
    assert not any("word29." in r.text for r in h.tts.requests)


async def test_short_noise_pauses_but_does_not_interrupt() -> None:
    llm = FakeResponseEngine(" ".join(LONG.split()[:15]))
    h = Harness(llm)
    caller = ScriptedCaller([Until(lambda: len(h.sink.frames_of(0)) >= 20), Speech(0.04), Until(h.agent_stops(1))])
    result = await h.run(caller)
    assert h.sink.clears == []
    assert result.transcript[0]["content"] == " ".join(LONG.split()[:15])
    assert h.asr.calls == [] and llm.requests == []
    # Pause, then decide: output paused while the click was judged, then resumed where it was.
    times = [f.at for f in h.sink.frames_of(0)]
    assert max(b - a for a, b in itertools.pairwise(times)) >= 0.08


@pytest.mark.parametrize(
    ("agent", "reply"),
    [
        ({"interruption_sensitivity": 0.0}, Reply(" ".join(LONG.split()[:15]))),
        ({}, Reply(" ".join(LONG.split()[:15]), no_interruption_allowed=True)),
    ],
    ids=["sensitivity_0", "no_interruption_allowed"],
)
async def test_uninterruptible_agent_keeps_talking(agent: dict[str, Any], reply: Reply) -> None:
    llm = FakeResponseEngine(reply)
    h = Harness(llm, agent=agent)
    caller = ScriptedCaller([Until(lambda: len(h.sink.frames_of(0)) >= 10), Speech(0.6), Until(h.agent_stops(1))])
    result = await h.run(caller)
    assert h.sink.clears == []
    assert result.transcript[0]["content"] == reply.text
    assert llm.requests == []


async def test_low_sensitivity_needs_longer_speech_to_interrupt() -> None:
    llm = FakeResponseEngine(LONG, ["Yes?"])
    h = Harness(llm, asr=FakeAsr(["excuse me"]), agent={"interruption_sensitivity": 0.5})
    # 0.5 → 0.09 + 0.5 * (0.8 - 0.09) ≈ 0.45 s of speech needed: 0.25 s is not enough, 0.7 s is.
    steps: list[Step] = [
        Until(lambda: len(h.sink.frames_of(0)) >= 10),
        Speech(0.25),
        Silence(0.3),
        Speech(0.7),
        Until(h.agent_stops(2)),
    ]
    caller = ScriptedCaller(steps)
    await h.run(caller)
    assert len(h.sink.clears) == 1
    assert h.sink.clears[0] - caller.speech_starts[1] >= 0.4


async def test_reminders_fire_and_stop_at_the_max() -> None:
    llm = FakeResponseEngine("Hi there.", ["Are you there?", "Hello?", "Never asked."])
    h = Harness(llm, agent={"reminder_trigger_ms": 200, "reminder_max_count": 2})
    await h.run(ScriptedCaller([Until(h.agent_stops(3)), Silence(0.6)]))
    assert [(r.response_id, r.reminder) for r in llm.requests] == [(1, True), (2, True)]


async def test_user_speech_resets_the_reminder_count() -> None:
    llm = FakeResponseEngine("Hi.", ["Still there?", "Sure.", "Anything else?"])
    h = Harness(llm, asr=FakeAsr(["yes"]), agent={"reminder_trigger_ms": 200, "reminder_max_count": 1})
    steps: list[Step] = [Until(h.agent_stops(2)), Speech(0.3), Until(h.agent_stops(4)), Silence(0.4)]
    await h.run(ScriptedCaller(steps))
    assert [r.reminder for r in llm.requests] == [True, False, True]


async def test_update_agent_from_llm_applies_mid_call() -> None:
    llm = FakeResponseEngine(Reply(" ".join(LONG.split()[:15]), delay=0.05))
    llm.push(AgentConfigUpdate({"interruption_sensitivity": 0.0}))
    h = Harness(llm)
    caller = ScriptedCaller([Until(lambda: len(h.sink.frames_of(0)) >= 10), Speech(0.5), Until(h.agent_stops(1))])
    await h.run(caller)
    assert h.conversation.config.interruption_sensitivity == 0.0
    assert h.sink.clears == []


async def test_agent_interrupt_cuts_in_and_is_spoken() -> None:
    llm = FakeResponseEngine(LONG)
    h = Harness(llm)

    def cut_in() -> None:
        llm.push(AgentInterrupt(1, "Sorry to cut in, ", False))
        llm.push(AgentInterrupt(1, "one moment.", True))

    asyncio.get_running_loop().call_later(0.4, cut_in)
    result = await h.run(ScriptedCaller([Until(h.agent_stops(2)), Silence(0.1)]))
    assert [u["role"] for u in result.transcript] == ["agent", "agent"]
    assert len(result.transcript[0]["content"].split()) < 30
    assert result.transcript[1]["content"] == "Sorry to cut in, one moment."


async def test_stale_response_chunks_are_never_played() -> None:
    llm = FakeResponseEngine("Hi.", [Reply("Current answer.", delay=0.1)])
    h = Harness(llm, asr=FakeAsr(["question"]))

    def stale() -> bool:
        if llm.requests:
            llm.push(ResponseChunk(0, "Stale begin text.", True))
            return True
        return False

    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3), Until(stale), Until(h.agent_stops(2))]))
    assert [u["content"] for u in result.transcript] == ["Hi.", "question", "Current answer."]
    assert not any("Stale" in r.text for r in h.tts.requests)


async def test_backchannel_while_the_user_talks_long() -> None:
    llm = FakeResponseEngine("", ["Got it."])
    agent = {"enable_backchannel": True, "backchannel_frequency": 1.0, "backchannel_words": ["mm-hmm"]}
    h = Harness(llm, asr=FakeAsr(["a long story"]), agent=agent, knobs={"backchannel_after_s": 0.4})
    caller = ScriptedCaller([Speech(1.0), Until(h.agent_stops(1))])
    result = await h.run(caller)
    assert [r.text for r in h.tts.requests] == ["mm-hmm", "mm-hmm", "Got it."]
    first_bc = h.sink.frames_of(0)[0].at
    assert 0.35 <= first_bc - caller.speech_starts[0] < 0.6
    assert h.sink.clears == [] and len(llm.requests) == 1
    assert [(u["role"], u["content"]) for u in result.transcript] == [("user", "a long story"), ("agent", "Got it.")]


async def test_no_backchannel_when_disabled() -> None:
    llm = FakeResponseEngine("", ["Got it."])
    h = Harness(llm, asr=FakeAsr(["a long story"]), knobs={"backchannel_after_s": 0.2})
    await h.run(ScriptedCaller([Speech(0.8), Until(h.agent_stops(1))]))
    assert [r.text for r in h.tts.requests] == ["Got it."]


@pytest.mark.parametrize("reply_delay", [0.0, 0.04, 0.08])
async def test_a_caller_who_goes_on_after_a_pause_is_not_talked_over_nor_lost(reply_delay: float) -> None:
    """The turn ended on a pause, and the reply comes just as the caller goes on speaking (before,
    at and after the onset of the new speech): whatever the race, the caller's second sentence
    is heard and answered, and nothing of a reply to half the utterance stays in the call."""
    llm = FakeResponseEngine("", [Reply("Sure, for which day?", delay=reply_delay), "Friday it is."])
    h = Harness(llm, asr=FakeAsr(["yes that is correct", "i also need a table for friday"]))
    steps: list[Step] = [
        Silence(0.3),
        Speech(0.8),
        Until(lambda: len(llm.requests) >= 1, timeout=3.0),  # the turn was decided on the pause
        Speech(1.0),
        Until(lambda: len(llm.requests) >= 2, timeout=5.0),
        Silence(1.0),  # the answer (three words, 0.3 s with the fake TTS) plays out
    ]
    result = await h.run(ScriptedCaller(steps))
    last = llm.requests[-1].transcript
    users = " ".join(u["content"] for u in last if u["role"] == "user")
    assert "i also need a table for friday" in users, last
    # The reply to the first half was never heard, or cut at once by the barge-in.
    first = [u for u in result.transcript if u["role"] == "agent" and "for which day" in u["content"]]
    assert not first or len(first[0]["content"].split()) <= 1, result.transcript
    assert (result.transcript[-1]["role"], result.transcript[-1]["content"]) == ("agent", "Friday it is.")


async def test_a_caller_who_goes_on_while_the_asr_is_slow_gets_one_answer_to_everything() -> None:
    """Under load the ASR of the first sentence finishes after the caller has gone on speaking:
    the turn decision must not answer the first half (that reply would wait for the caller to stop,
    then play and swallow the second sentence); it waits and answers both."""
    llm = FakeResponseEngine("", ["Sure, for which day?", "Anything else?"])
    h = Harness(llm, asr=FakeAsr(["yes that is correct", "i also need a table for friday"], delay=0.7))
    steps: list[Step] = [
        Silence(0.3),
        Speech(0.8),
        Silence(0.45),  # the decision comes 0.4 s after the speech; the ASR takes 0.7 s
        Speech(1.0),
        Until(lambda: len(llm.requests) >= 1, timeout=5.0),
        Silence(1.5),
    ]
    result = await h.run(ScriptedCaller(steps))
    assert len(llm.requests) == 1, [r.transcript for r in llm.requests]
    users = [u["content"] for u in llm.requests[0].transcript if u["role"] == "user"]
    assert " ".join(users) == "yes that is correct i also need a table for friday", users
    assert [(u["role"], u["content"]) for u in result.transcript][-1] == ("agent", "Sure, for which day?")
