"""Every way a conversation ends, and the disconnection_reason it reports."""

import asyncio

from tests.fakes import (
    FakeAsr,
    FakeResponseEngine,
    FakeTts,
    Harness,
    NoAudioCaller,
    Reply,
    ScriptedCaller,
    Silence,
    Speech,
    Step,
    Until,
)
from voxline.llm.interfaces import Utterance


async def test_client_hangup_is_user_hangup() -> None:
    h = Harness(FakeResponseEngine("Hi."))
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Silence(0.1)]))
    assert result.disconnection_reason == "user_hangup"
    assert h.llm.closed


async def test_llm_end_call_finishes_speaking_then_agent_hangup() -> None:
    llm = FakeResponseEngine("Hi.", [Reply("Goodbye, have a nice day.", end_call=True)])
    h = Harness(llm, asr=FakeAsr(["bye"]))
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3)], hold=True))
    assert result.disconnection_reason == "agent_hangup"
    assert result.transcript[-1]["content"] == "Goodbye, have a nice day."
    assert len(h.sink.frames_of(1)) >= 5 * 0.1 / 0.02


async def test_end_call_with_nothing_to_say_hangs_up_at_once() -> None:
    llm = FakeResponseEngine("Hi.", [Reply("", end_call=True)])
    h = Harness(llm, asr=FakeAsr(["bye"]))
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3)], hold=True))
    assert result.disconnection_reason == "agent_hangup"
    assert h.sink.frames_of(1) == []


async def test_a_transfer_number_ends_a_web_call_with_call_transfer_after_speaking() -> None:
    llm = FakeResponseEngine("Hi.", [Reply("Connecting you to the front desk.", transfer_number="+14155550100")])
    h = Harness(llm, asr=FakeAsr(["front desk"]))
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3)], hold=True))
    assert result.disconnection_reason == "call_transfer"
    assert result.transcript[-1]["content"] == "Connecting you to the front desk."


async def test_user_interrupting_the_goodbye_drops_the_end_call() -> None:
    llm = FakeResponseEngine("Hi.", [Reply("Goodbye " * 20, end_call=True), "Still here."])
    h = Harness(llm, asr=FakeAsr(["wait", "question"]))
    steps: list[Step] = [
        Until(h.agent_stops(1)),
        Speech(0.3),
        Until(lambda: len(h.sink.frames_of(1)) >= 10),
        Speech(0.4),
        Until(h.agent_stops(3)),
        Silence(0.1),
    ]
    result = await h.run(ScriptedCaller(steps))
    assert result.disconnection_reason == "user_hangup"
    assert result.transcript[-1]["content"] == "Still here."


async def test_request_end_uses_the_given_reason() -> None:
    h = Harness(FakeResponseEngine("Hi."))
    asyncio.get_running_loop().call_later(0.3, h.conversation.request_end, "manual_stopped")
    result = await h.run(ScriptedCaller([], hold=True))
    assert result.disconnection_reason == "manual_stopped"
    assert 0.25 <= result.duration_s < 0.6


async def test_silence_beyond_limit_is_inactivity() -> None:
    h = Harness(FakeResponseEngine("Hi."), agent={"end_call_after_silence_ms": 500})
    result = await h.run(ScriptedCaller([], hold=True))
    assert result.disconnection_reason == "inactivity"
    # Counted from the end of the agent's speech (0.1 s), not from the call start.
    assert 0.55 <= result.duration_s < 0.9


async def test_max_call_duration_reached() -> None:
    h = Harness(FakeResponseEngine("Hi."), agent={"max_call_duration_ms": 400})
    result = await h.run(ScriptedCaller([Speech(0.2)], hold=True))
    assert result.disconnection_reason == "max_duration_reached"
    assert 0.38 <= result.duration_s < 0.6


async def test_no_audio_from_the_start_is_error_no_audio_received() -> None:
    h = Harness(FakeResponseEngine("Hi."), knobs={"no_audio_timeout_s": 0.3})
    result = await h.run(NoAudioCaller())
    assert result.disconnection_reason == "error_no_audio_received"


async def test_asr_failure_is_error_asr() -> None:
    h = Harness(FakeResponseEngine("Hi."), asr=FakeAsr(error=RuntimeError("model crashed")))
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3)], hold=True))
    assert result.disconnection_reason == "error_asr"
    assert "model crashed" in result.detail


async def test_asr_stall_is_error_asr() -> None:
    asr = FakeAsr(["late"], delay=5.0)
    h = Harness(FakeResponseEngine("Hi."), asr=asr, knobs={"asr_timeout_s": 0.2})
    result = await h.run(ScriptedCaller([Speech(0.3)], hold=True))
    assert result.disconnection_reason == "error_asr"


async def test_llm_ended_reason_is_reported() -> None:
    h = Harness(FakeResponseEngine("Hi."))
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, h.llm.end, "error_llm_websocket_lost_connection", "no pong")
    result = await h.run(ScriptedCaller([], hold=True))
    assert result.disconnection_reason == "error_llm_websocket_lost_connection"
    assert result.detail == "no pong"


async def test_tts_stall_ends_the_turn_not_the_call() -> None:
    llm = FakeResponseEngine("Hi.")
    h = Harness(llm, tts=FakeTts(delay=5.0), knobs={"tts_timeout_s": 0.2})
    asyncio.get_running_loop().call_later(0.5, h.conversation.request_end, "manual_stopped")
    result = await h.run(ScriptedCaller([], hold=True))
    assert result.disconnection_reason == "manual_stopped"
    assert result.transcript == [] and h.sink.frames == []
    assert h.tts.requests[0].cancelled


class StalledRequests(FakeResponseEngine):
    async def request_response(self, response_id: int, transcript: list[Utterance], **kwargs: object) -> None:
        await asyncio.sleep(10)


async def test_stalled_llm_send_is_error_llm_websocket_runtime() -> None:
    h = Harness(StalledRequests("Hi."), asr=FakeAsr(["hello"]), knobs={"llm_send_timeout_s": 0.2})
    result = await h.run(ScriptedCaller([Until(h.agent_stops(1)), Speech(0.3)], hold=True))
    assert result.disconnection_reason == "error_llm_websocket_runtime"
