"""data_storage_retention_days: once a call's retention is over, the periodic clean-up deletes its
transcript, collected variables, analysis text and files, and keeps its basic attributes."""

import pytest

from tests.conftest import T0, FakeClock
from voxline.errors import BadRequest
from voxline.schemas.agent import AgentCreateRequest
from voxline.schemas.call import CreateWebCallRequest
from voxline.services import Services
from voxline.store.objects import call_key

DAY_MS = 86_400_000
TRANSCRIPT = [{"role": "user", "content": "my card number is four two", "words": []}]


async def ended_call(svc: Services, retention_days: int | None) -> str:
    fields = {"voice_id": "piper-joe", "response_engine": {"type": "custom-llm", "llm_websocket_url": "ws://x/y"}}
    if retention_days is not None:
        fields["data_storage_retention_days"] = retention_days
    agent = await svc.agents.create(AgentCreateRequest.model_validate(fields))
    record = await svc.calls.create_web_call(CreateWebCallRequest(agent_id=agent.agent_id))
    await svc.calls.join_by_call_id(record.call_id, max_concurrent=8)
    sensitive = {
        "transcript": "User: my card number is four two\n",
        "transcript_object": TRANSCRIPT,
        "transcript_with_tool_calls": TRANSCRIPT,
        "collected_dynamic_variables": {"card": "42"},
    }
    await svc.calls.finish(record.call_id, "user_hangup", {"latency": {}}, {}, sensitive=sensitive)
    await svc.objects.put_bytes(call_key(record.call_id, "public_log.txt"), b"card number 42", "text/plain")
    await svc.calls.record_files(record.call_id, {"public_log.txt": {"content_type": "text/plain", "size": 14}})
    analysis = {"call_summary": "The caller gave a card number.", "user_sentiment": "Neutral", "call_successful": True}
    await svc.calls.record_analysis(record.call_id, analysis, [])
    return record.call_id


async def test_calls_are_purged_when_their_retention_is_over(services: tuple[Services, FakeClock]) -> None:
    svc, clock = services
    kept_forever = await ended_call(svc, None)
    purged = await ended_call(svc, 2)
    clock.now = T0 + 2 * DAY_MS - 1
    assert await svc.calls.purge_expired() == []
    clock.now = T0 + 2 * DAY_MS + 1
    assert await svc.calls.purge_expired() == [purged]
    assert await svc.calls.purge_expired() == []  # once

    call = svc.calls.to_response(await svc.calls.get(purged)).to_wire()
    for field in ("transcript", "transcript_object", "transcript_with_tool_calls", "collected_dynamic_variables"):
        assert field not in call
    assert "public_log_url" not in call
    assert call["call_analysis"] == {"user_sentiment": "Neutral", "call_successful": True}
    assert (call["call_status"], call["disconnection_reason"]) == ("ended", "user_hangup")
    assert await svc.objects.info(call_key(purged, "public_log.txt")) is None
    with pytest.raises(BadRequest, match="no longer has a transcript"):
        await svc.after_call.rerun_analysis(purged)

    other = svc.calls.to_response(await svc.calls.get(kept_forever)).to_wire()
    assert other["transcript_object"] == TRANSCRIPT and "public_log_url" in other
    assert await svc.objects.info(call_key(kept_forever, "public_log.txt")) is not None
