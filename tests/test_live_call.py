"""Live web calls end to end: a real server with the real speech models, the example receptionist
as the LLM, and a scripted caller speaking flite speech over the web-call WebSocket."""

import asyncio
import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.caller import Refused, WebCaller
from tests.servers import ServerProcess
from voxline.speech.audio import pcm16le_to_float32
from voxline.speech.whisper import WhisperAsr

pytestmark = pytest.mark.slow
RATE = 16_000


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("live"), env_overrides={"VOXLINE_PRELOAD_SPEECH": "true"})
    try:
        yield server.start(timeout=90)
    finally:
        server.close()


def demo_call(server: ServerProcess) -> dict[str, object]:
    with server.client() as api:
        agent = next(a for a in api.get("/list-agents").json() if "Demo receptionist" in (a.get("agent_name") or ""))
        created = api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"]})
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


async def get_call(server: ServerProcess, call_id: object) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as api:
        return (await api.get(f"/v2/get-call/{call_id}")).json()  # type: ignore[no-any-return]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def test_three_turn_call_with_the_demo_receptionist(live_server: ServerProcess, speech_asr: WhisperAsr) -> None:
    call = demo_call(live_server)
    url = f"ws://127.0.0.1:{live_server.port}/web-call-websocket"
    async with WebCaller(url, str(call["access_token"]), RATE) as caller:
        async with asyncio.timeout(30):
            greeting_end = await caller.wait_event("agent_stop_talking")
        greeting = caller.agent_audio(0, greeting_end)

        for sentence in ("My name is Alice.", "I would like to come on Tuesday."):
            spoken = await caller.say(sentence)
            async with asyncio.timeout(30):
                await caller.wait_event("agent_start_talking", spoken)
                await caller.wait_event("agent_stop_talking", spoken)

        await caller.say("That is all, goodbye.")
        async with asyncio.timeout(40):
            await caller.wait_ended()

    assert caller.events("call_ended") == [{"event_type": "call_ended", "disconnection_reason": "agent_hangup"}]
    assert caller.close_code == 1000

    heard = await speech_asr.transcribe(pcm16le_to_float32(greeting))
    assert {"thank", "calling", "bright", "smile", "receptionist", "name"} <= words(heard.text), heard.text

    ended = await get_call(live_server, call["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", "agent_hangup")
    assert ended["duration_ms"] > 5_000 and ended["start_timestamp"] < ended["end_timestamp"]
    roles = [u["role"] for u in ended["transcript_object"]]
    assert roles[:2] == ["agent", "user"] and roles.count("user") == 3, roles
    user_said = " ".join(u["content"] for u in ended["transcript_object"] if u["role"] == "user")
    assert {"alice", "tuesday"} <= words(user_said) and "bye" in user_said.lower(), user_said  # "goodbye", "good bye"
    assert "Bright Smile Dental" in ended["transcript"]
    for utterance in ended["transcript_object"]:
        times = [(w["start"], w["end"]) for w in utterance["words"]]
        assert times and all(s <= e for s, e in times), utterance


async def test_a_token_joins_once(live_server: ServerProcess) -> None:
    call = demo_call(live_server)
    url = f"ws://127.0.0.1:{live_server.port}/web-call-websocket"
    async with WebCaller(url, str(call["access_token"]), RATE) as caller:
        async with asyncio.timeout(30):
            await caller.wait_event("agent_start_talking")
        with pytest.raises(Refused) as refused:
            async with WebCaller(url, str(call["access_token"]), RATE):
                pass
        assert refused.value.code == 4001 and "joined once" in refused.value.reason
    async with asyncio.timeout(10):
        await caller.wait_ended()


async def test_client_hang_up_ends_the_call_as_user_hangup(live_server: ServerProcess) -> None:
    call = demo_call(live_server)
    url = f"ws://127.0.0.1:{live_server.port}/web-call-websocket"
    async with WebCaller(url, str(call["access_token"]), RATE) as caller:
        async with asyncio.timeout(30):
            await caller.wait_event("agent_start_talking")
    for _ in range(100):
        ended = await get_call(live_server, call["call_id"])
        if ended["call_status"] != "ongoing":
            break
        await asyncio.sleep(0.1)
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", "user_hangup")


async def test_retell_web_client_1x_audio_websocket(live_server: ServerProcess) -> None:
    """register-call, then the 1.x socket for three turns: ping/pong, update events with
    enable_update, the agent hanging up (close 1000 with the reason)."""
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=headers) as api:
        agents = (await api.get("/list-agents")).json()
        agent_id = next(a["agent_id"] for a in agents if "Demo receptionist" in (a.get("agent_name") or ""))
        body = {"agent_id": agent_id, "audio_websocket_protocol": "web", "audio_encoding": "s16le", "sample_rate": RATE}
        registered = (await api.post("/register-call", json=body)).json()
    url = f"ws://127.0.0.1:{live_server.port}/audio-websocket/{registered['call_id']}?enable_update=true"
    async with WebCaller(url, "", RATE) as caller:
        await caller.send_text("ping")
        async with asyncio.timeout(30):
            await caller.wait_event("pong")
            await caller.wait_until(lambda: caller.first_loud_audio_after(0) is not None)
            await caller.wait_until(lambda: any("Bright Smile" in str(e) for e in caller.events("update")))
        for sentence, expect in (("My name is Bob.", "Bob"), ("Thursday would be good.", "Thursday")):
            spoken = await caller.say(sentence)
            async with asyncio.timeout(30):
                await caller.wait_until(
                    lambda expect=expect: any(expect in str(e.get("transcript")) for e in caller.events("update"))
                )
                await caller.wait_until(lambda spoken=spoken: caller.first_loud_audio_after(spoken) is not None)
        await caller.say("Goodbye.")
        async with asyncio.timeout(40):
            await caller.wait_ended()
    assert (caller.close_code, caller.close_reason) == (1000, "agent_hangup")
    assert not caller.events("agent_start_talking")  # 1.x derives talking state itself
    ended = await get_call(live_server, registered["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", "agent_hangup")
    assert [u["role"] for u in ended["transcript_object"]].count("user") == 3


async def test_stop_call_ends_a_live_call_as_manual_stopped(live_server: ServerProcess) -> None:
    call = demo_call(live_server)
    url = f"ws://127.0.0.1:{live_server.port}/web-call-websocket"
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    async with WebCaller(url, str(call["access_token"]), RATE) as caller:
        async with asyncio.timeout(30):
            await caller.wait_event("agent_start_talking")
        await asyncio.sleep(1.5)  # some of the greeting is played
        async with httpx.AsyncClient(base_url=live_server.base_url, headers=headers) as api:
            assert (await api.post(f"/v2/stop-call/{call['call_id']}")).status_code == 204
        async with asyncio.timeout(10):
            await caller.wait_ended()
    assert caller.events("call_ended") == [{"event_type": "call_ended", "disconnection_reason": "manual_stopped"}]
    ended = await get_call(live_server, call["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", "manual_stopped")
    greeting = ended["transcript_object"][0]
    assert greeting["role"] == "agent" and greeting["content"], ended["transcript_object"]
    assert "Hello, thank you for calling".startswith(greeting["content"][:20]), greeting


async def test_unreachable_llm_server_ends_the_call_with_error_llm_websocket_open(live_server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=headers) as api:
        engine = {"type": "custom-llm", "llm_websocket_url": "ws://127.0.0.1:9/llm-websocket"}
        agent = (await api.post("/create-agent", json={"voice_id": "piper-joe", "response_engine": engine})).json()
        call = (await api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"]})).json()
    url = f"ws://127.0.0.1:{live_server.port}/web-call-websocket"
    async with WebCaller(url, str(call["access_token"]), RATE) as caller:
        async with asyncio.timeout(30):
            await caller.wait_ended()
    assert caller.events("call_ended") == [
        {"event_type": "call_ended", "disconnection_reason": "error_llm_websocket_open"}
    ]
    ended = await get_call(live_server, call["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"]) == ("error", "error_llm_websocket_open")


async def test_a_join_beyond_the_concurrency_limit_is_refused_and_the_call_ends(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server("sqlite", VOXLINE_MAX_CONCURRENT_CALLS="1").start()
    first, second = demo_call(server), demo_call(server)
    url = f"ws://127.0.0.1:{server.port}/web-call-websocket"
    async with WebCaller(url, str(first["access_token"]), RATE) as caller:
        async with asyncio.timeout(60):
            await caller.wait_event("agent_start_talking")
        with pytest.raises(Refused) as refused:
            async with WebCaller(url, str(second["access_token"]), RATE):
                pass
    assert refused.value.code == 4029 and "concurrency limit" in refused.value.reason
    ended = await get_call(server, second["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"], ended["duration_ms"]) == (
        "error",
        "concurrency_limit_reached",
        0,
    )
