"""Joining and finishing live calls, on SQLite and PostgreSQL: once, in time, within capacity."""

import pytest

from tests.conftest import T0, FakeClock
from voxline.calls.service import JoinRefused
from voxline.calls.tokens import AccessTokens
from voxline.schemas.agent import AgentCreateRequest
from voxline.schemas.call import CreateWebCallRequest
from voxline.services import Services


async def new_call(services: Services) -> tuple[str, str]:
    agent = await services.agents.create(
        AgentCreateRequest.model_validate(
            {"voice_id": "piper-joe", "response_engine": {"type": "custom-llm", "llm_websocket_url": "ws://x/y"}}
        )
    )
    record = await services.calls.create_web_call(CreateWebCallRequest(agent_id=agent.agent_id))
    return record.call_id, services.calls.access_token(record)


async def test_join_with_token_makes_the_call_ongoing_once(services: tuple[Services, FakeClock]) -> None:
    svc, clock = services
    call_id, token = await new_call(svc)
    clock.now += 5_000
    joined = await svc.calls.join_with_token(token, max_concurrent=8)
    assert (joined.call_id, joined.call_status, joined.start_timestamp) == (call_id, "ongoing", T0 + 5_000)
    with pytest.raises(JoinRefused, match="can be joined once"):
        await svc.calls.join_with_token(token, max_concurrent=8)


async def test_expired_forged_and_foreign_tokens_are_refused(services: tuple[Services, FakeClock]) -> None:
    svc, clock = services
    _, token = await new_call(svc)
    other_id, _ = await new_call(svc)
    forged = AccessTokens(b"not the server's key, 32 bytes...").issue(other_id, "nonce", T0 + 30_000)
    with pytest.raises(JoinRefused, match="invalid"):
        await svc.calls.join_with_token(forged, max_concurrent=8)
    with pytest.raises(JoinRefused, match="invalid"):
        await svc.calls.join_with_token(token[:-2] + "xx", max_concurrent=8)
    clock.now += 30_000
    with pytest.raises(JoinRefused, match="expired"):
        await svc.calls.join_with_token(token, max_concurrent=8)


async def test_token_of_a_stopped_call_cannot_join(services: tuple[Services, FakeClock]) -> None:
    svc, _ = services
    call_id, token = await new_call(svc)
    await svc.calls.stop(call_id)
    with pytest.raises(JoinRefused, match="is ended"):
        await svc.calls.join_with_token(token, max_concurrent=8)


async def test_join_beyond_the_concurrency_limit_ends_the_call(services: tuple[Services, FakeClock]) -> None:
    svc, _ = services
    _, first = await new_call(svc)
    second_id, second = await new_call(svc)
    await svc.calls.join_with_token(first, max_concurrent=1)
    with pytest.raises(JoinRefused, match="concurrency limit"):
        await svc.calls.join_with_token(second, max_concurrent=1)
    ended = await svc.calls.get(second_id)
    assert (ended.call_status, ended.disconnection_reason, ended.duration_ms) == (
        "error",
        "concurrency_limit_reached",
        0,
    )
    assert await svc.calls.calls.count_ongoing() == 1


async def test_finish_writes_the_end_once(services: tuple[Services, FakeClock]) -> None:
    svc, clock = services
    call_id, _ = await new_call(svc)
    await svc.calls.join_by_call_id(call_id, max_concurrent=8)
    clock.now += 42_000
    transcript = {"transcript": "Agent: Hi.\nUser: Bye.\n"}
    ended = await svc.calls.finish(call_id, "user_hangup", transcript)
    assert ended is not None
    assert (ended.call_status, ended.disconnection_reason, ended.duration_ms) == ("ended", "user_hangup", 42_000)
    assert svc.calls.to_response(ended).transcript == "Agent: Hi.\nUser: Bye.\n"
    assert await svc.calls.finish(call_id, "agent_hangup") is None
    assert (await svc.calls.get(call_id)).disconnection_reason == "user_hangup"


async def test_error_reasons_end_with_error_status(services: tuple[Services, FakeClock]) -> None:
    svc, _ = services
    call_id, _ = await new_call(svc)
    await svc.calls.join_by_call_id(call_id, max_concurrent=8)
    ended = await svc.calls.finish(call_id, "error_llm_websocket_open")
    assert ended is not None and ended.call_status == "error"


async def test_calls_of_a_silent_process_end_as_error_unknown(services: tuple[Services, FakeClock]) -> None:
    svc, clock = services
    await svc.calls.heartbeat()
    orphan_id, _ = await new_call(svc)
    await svc.calls.join_by_call_id(orphan_id, max_concurrent=8)
    clock.now += 20_000
    assert await svc.calls.end_orphaned() == []  # heartbeat 20 s old: still alive
    clock.now += 15_000
    assert await svc.calls.end_orphaned() == [orphan_id]  # 35 s of silence: it stopped
    ended = await svc.calls.get(orphan_id)
    assert (ended.call_status, ended.disconnection_reason, ended.duration_ms) == ("error", "error_unknown", 35_000)


async def test_calls_of_a_heartbeating_process_stay_ongoing(services: tuple[Services, FakeClock]) -> None:
    svc, clock = services
    await svc.calls.heartbeat()
    call_id, _ = await new_call(svc)
    await svc.calls.join_by_call_id(call_id, max_concurrent=8)
    for _ in range(10):
        clock.now += 10_000
        await svc.calls.heartbeat()
        assert await svc.calls.end_orphaned() == []
    assert (await svc.calls.get(call_id)).call_status == "ongoing"
