"""What a user of a live call sees, end to end: a real `voxline serve` with the real speech models,
a scripted caller speaking flite speech over the web-call WebSocket, and, per test, a scripted LLM
server of the test's own (the LLM WebSocket protocol, docs/llm-websocket.md) on a loopback port."""

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http import HTTPStatus
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from websockets.asyncio.server import Request, Response, ServerConnection, serve

from tests.caller import FRAME_MS, WebCaller, flite_speech
from tests.servers import ServerProcess

pytestmark = pytest.mark.slow
RATE = 16_000
GREETING = "Hello, this is the test line."

Handler = Callable[["ScriptedLlm", ServerConnection], Awaitable[None]]


class ScriptedLlm:
    """A test LLM server: records every message Voxline sends (with its arrival time) and runs the
    test's `handler` for each connection. Handshakes beyond `accept` are refused with HTTP 503."""

    def __init__(self, handler: Handler, accept: int = 100) -> None:
        self.handler = handler
        self.accept = accept
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.attempts = 0
        self.close_codes: list[int | None] = []
        self._arrived = asyncio.Condition()

    async def __aenter__(self) -> "ScriptedLlm":
        self._server = await serve(self._serve, "127.0.0.1", 0, process_request=self._process_request)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/llm-websocket"

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.attempts += 1
        if self.attempts > self.accept:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "no more connections\n")
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        try:
            await self.handler(self, ws)
        except websockets.ConnectionClosed as exc:
            self.close_codes.append(exc.rcvd.code if exc.rcvd else None)
        async with self._arrived:
            self._arrived.notify_all()

    async def send(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        await ws.send(json.dumps(message))
        self.sent.append((time.monotonic(), message))

    async def say(self, ws: ServerConnection, response_id: int, content: str, **flags: Any) -> None:
        message = {"response_type": "response", "response_id": response_id, "content": content}
        await self.send(ws, {**message, "content_complete": True, **flags})

    async def next(self, ws: ServerConnection) -> dict[str, Any]:
        """The next message from Voxline (recorded); raises ConnectionClosed when the socket ends."""
        message = json.loads(await ws.recv())
        self.received.append((time.monotonic(), message))
        async with self._arrived:
            self._arrived.notify_all()
        return message  # type: ignore[no-any-return]

    async def next_where(self, ws: ServerConnection, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while not predicate(message := await self.next(ws)):
            pass
        return message

    async def answer(self, ws: ServerConnection, reply: Callable[[dict[str, Any]], str | None]) -> None:
        """Answer every response_required / reminder_required with `reply(message)` until the call ends."""
        while True:
            message = await self.next(ws)
            if message["interaction_type"] in ("response_required", "reminder_required"):
                if (text := reply(message)) is not None:
                    await self.say(ws, message["response_id"], text)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.received if m["interaction_type"] == kind]

    def arrival(self, kind: str, after: float = 0.0) -> float | None:
        return next((t for t, m in self.received if t > after and m["interaction_type"] == kind), None)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (wrap in `asyncio.timeout`) until `predicate()` holds, re-checked as messages arrive."""
        async with self._arrived:
            await self._arrived.wait_for(predicate)


def said_by(transcript: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, content) of each utterance."""
    return [(u["role"], u["content"]) for u in transcript]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("live"), env_overrides={"VOXLINE_PRELOAD_SPEECH": "true"})
    try:
        yield server.start(timeout=90)
    finally:
        server.close()


@contextlib.asynccontextmanager
async def api_client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as api:
        yield api


async def web_call(server: ServerProcess, llm: ScriptedLlm, **agent_fields: Any) -> dict[str, Any]:
    """A new agent driven by `llm`, and a web call to it."""
    engine = {"type": "custom-llm", "llm_websocket_url": llm.url}
    async with api_client(server) as api:
        created = await api.post(
            "/create-agent", json={"voice_id": "piper-joe", "response_engine": engine, **agent_fields}
        )
        assert created.status_code == 201, created.text
        call = await api.post("/v3/create-web-call", json={"agent_id": created.json()["agent_id"]})
    assert call.status_code == 201, call.text
    return call.json()  # type: ignore[no-any-return]


def socket_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/web-call-websocket"


async def get_call(server: ServerProcess, call_id: str) -> dict[str, Any]:
    async with api_client(server) as api:
        return (await api.get(f"/v2/get-call/{call_id}")).json()  # type: ignore[no-any-return]


async def ended_call(server: ServerProcess, call_id: str) -> dict[str, Any]:
    """get-call once the call has been written as over (the end is stored right after the socket closes)."""
    for _ in range(100):
        call = await get_call(server, call_id)
        if call["call_status"] not in ("registered", "ongoing"):
            return call
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} never ended: {call}")


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def speech_onset_s(pcm16le: bytes, threshold: float = 500.0) -> float:
    """Offset of the first 20 ms frame of `pcm16le` that is speech, not leading silence."""
    samples = np.frombuffer(pcm16le, dtype="<i2").astype(np.float32)
    n = RATE * FRAME_MS // 1000
    for i in range(0, len(samples) - n, n):
        if float(np.sqrt(np.mean(samples[i : i + n] ** 2))) >= threshold:
            return i / RATE
    raise AssertionError("no speech in the audio")


LONG_REPLY = (
    "Thank you for calling the city library, where we are always happy to help. "
    "Our main building is open from nine in the morning until eight in the evening on weekdays. "
    "On Saturdays we open at ten and close at four, and on Sundays we are closed all day. "
    "You can renew your books online, by phone, or at any of our branches. "
    "Is there anything else I can help you with today?"
)
INTERRUPTION = "Sorry, can you tell me where the nearest branch is?"


async def test_caller_barging_in_cuts_the_agent_off_within_300_ms(live_server: ServerProcess) -> None:
    async def handler(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await llm.say(ws, 0, LONG_REPLY)
        await llm.answer(ws, lambda m: "The nearest branch is on Main Street.")

    async with ScriptedLlm(handler) as llm:
        call = await web_call(live_server, llm)
        async with WebCaller(socket_url(live_server), call["access_token"], RATE) as caller:
            async with asyncio.timeout(30):
                agent_started = await caller.wait_event("agent_start_talking")
            await asyncio.sleep(max(0.0, agent_started + 1.5 - time.monotonic()))
            said = asyncio.create_task(caller.say(INTERRUPTION))
            async with asyncio.timeout(30):
                cleared = await caller.wait_event("clear")
                await said
                await llm.wait_until(lambda: len(llm.sent) >= 2)  # the begin message, then the answer
                await caller.wait_event("agent_stop_talking", llm.sent[1][0])

    speech_start = caller.speech_starts[0] + speech_onset_s(flite_speech(INTERRUPTION, RATE))
    # No audio of the next response can exist before the LLM sent it: frames after that are not
    # the interrupted reply's (they may even precede their agent_start_talking: see the test below).
    new_reply_sent = llm.sent[1][0]  # [0] is the begin message
    assert speech_start < cleared < speech_start + 1.0, (cleared - speech_start, caller.events())
    late = [r.at - speech_start for r in caller.received if r.audio and speech_start + 0.3 < r.at < new_reply_sent]
    assert not late, f"agent audio {late[:5]} s after the caller started speaking"
    after_clear = [r.at for r in caller.received if r.audio and cleared < r.at < new_reply_sent]
    assert not after_clear, "agent audio of the interrupted reply after clear"
    assert caller.agent_audio(new_reply_sent), "the agent did not answer after the interruption"

    ended = await ended_call(live_server, call["call_id"])
    cut = ended["transcript_object"][0]
    assert cut["role"] == "agent" and cut["content"], ended["transcript_object"]
    assert LONG_REPLY.startswith(cut["content"]) and len(cut["content"]) < len(LONG_REPLY), cut["content"]
    # It stops where the audio stopped: the kept words were played before the cut, and little
    # audio (at most about a word) was played after the last kept word.
    played_s = len(caller.agent_audio(0, cleared)) / 2 / RATE
    spoken_s = cut["words"][-1]["end"] - cut["words"][0]["start"]
    assert spoken_s <= played_s + 0.05 and played_s - spoken_s < 1.0, (played_s, spoken_s, cut)

    request = llm.of("response_required")[0]
    assert request["response_id"] == 1
    assert said_by(request["transcript"])[0] == ("agent", cut["content"]), request["transcript"]
    assert request["transcript"][1]["role"] == "user"
    # ASR may inflect a word ("branches"): each asked-for word must begin a word that was heard.
    heard = words(request["transcript"][1]["content"])
    assert all(any(w.startswith(stem) for w in heard) for stem in ("nearest", "branch")), request["transcript"]
    user_turn = [m for m in llm.of("update_only") if m.get("turntaking") == "user_turn"]
    assert user_turn and said_by(user_turn[0]["transcript"]) == [("agent", cut["content"])], user_turn


async def test_agent_start_talking_arrives_before_the_agent_audio(live_server: ServerProcess) -> None:
    async def handler(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await llm.say(ws, 0, GREETING)
        await llm.answer(ws, lambda m: "Nice to meet you.")

    async with ScriptedLlm(handler) as llm:
        call = await web_call(live_server, llm)
        async with WebCaller(socket_url(live_server), call["access_token"], RATE) as caller:
            async with asyncio.timeout(30):
                greeted = await caller.wait_event("agent_stop_talking")
                spoken_at = await caller.say("My name is Alice.")
                await caller.wait_event("agent_stop_talking", spoken_at)

    kinds = ["audio" if r.audio else str(r.event and r.event["event_type"]) for r in caller.received]
    talking = False
    for kind in kinds:
        if kind == "agent_start_talking":
            talking = True
        elif kind == "agent_stop_talking":
            talking = False
        elif kind == "audio":
            assert talking, f"agent audio outside agent_start_talking … agent_stop_talking: {kinds[:8]} …"
    assert kinds.count("agent_start_talking") == 2 and greeted


async def test_the_llm_is_told_who_spoke_and_what_the_caller_said(live_server: ServerProcess) -> None:
    replies = {1: "Nice to meet you, Alice.", 2: "Paris is lovely."}

    async def handler(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await llm.say(ws, 0, GREETING)
        await llm.answer(ws, lambda m: replies.get(m["response_id"], "Okay."))

    async with ScriptedLlm(handler) as llm:
        call = await web_call(live_server, llm)
        async with WebCaller(socket_url(live_server), call["access_token"], RATE) as caller:
            async with asyncio.timeout(30):
                await caller.wait_event("agent_stop_talking")
                for sentence in ("My name is Alice.", "I live in Paris."):
                    spoken_at = await caller.say(sentence)
                    await caller.wait_event("agent_start_talking", spoken_at)
                    await caller.wait_event("agent_stop_talking", spoken_at)

    requests = llm.of("response_required")
    ids = [m["response_id"] for m in requests]
    assert ids == sorted(set(ids)) and ids[0] >= 1 and len(ids) >= 2, ids
    first, last = requests[0]["transcript"], requests[-1]["transcript"]
    assert said_by(first)[0] == ("agent", GREETING) and first[-1]["role"] == "user", first
    assert "alice" in words(first[-1]["content"]), first
    assert last[-1]["role"] == "user" and "paris" in words(last[-1]["content"]), last
    assert ("agent", replies[1]) in said_by(last), last

    turntaking = [m["turntaking"] for m in llm.of("update_only") if m.get("turntaking")]
    assert turntaking[:4] == ["agent_turn", "user_turn", "agent_turn", "user_turn"], turntaking
    assert all(a != b for a, b in itertools.pairwise(turntaking)), turntaking

    ended = await ended_call(live_server, call["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", "user_hangup")
    assert said_by(ended["transcript_object"]) == [*said_by(last), ("agent", replies[2])], ended


async def test_reminders_then_inactivity_end_a_silent_call(live_server: ServerProcess) -> None:
    async def handler(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await llm.say(ws, 0, GREETING)
        await llm.answer(ws, lambda m: "Are you still there?")

    async with ScriptedLlm(handler) as llm:
        fields = {"reminder_trigger_ms": 3000, "reminder_max_count": 2, "end_call_after_silence_ms": 10_000}
        call = await web_call(live_server, llm, **fields)
        async with WebCaller(socket_url(live_server), call["access_token"], RATE) as caller:
            async with asyncio.timeout(40):
                await caller.wait_ended()
            ended_at = time.monotonic()

    assert caller.events("call_ended") == [{"event_type": "call_ended", "disconnection_reason": "inactivity"}]
    assert len(llm.of("reminder_required")) == 2 and not llm.of("response_required"), llm.received
    stops = [r.at for r in caller.received if r.event and r.event["event_type"] == "agent_stop_talking"]
    assert len(stops) == 3, caller.events()
    for stop in stops[:2]:  # each reminder comes reminder_trigger_ms after the agent stopped talking
        reminder = llm.arrival("reminder_required", stop)
        assert reminder is not None and 2.8 < reminder - stop < 4.5, (reminder, stop)
    assert 9.8 < ended_at - stops[-1] < 13.0, ended_at - stops[-1]

    ended = await ended_call(live_server, call["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", "inactivity")
    said = " ".join(u["content"] for u in ended["transcript_object"])
    assert said.count("Are you still there?") == 2 and GREETING in said, ended["transcript_object"]
    assert {u["role"] for u in ended["transcript_object"]} == {"agent"}, ended["transcript_object"]


async def test_a_client_that_sends_no_audio_ends_with_error_no_audio_received(live_server: ServerProcess) -> None:
    async def handler(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await llm.say(ws, 0, GREETING)
        await llm.answer(ws, lambda m: "Okay.")

    async with ScriptedLlm(handler) as llm:
        call = await web_call(live_server, llm)
        async with websockets.connect(socket_url(live_server)) as ws:
            await ws.send(json.dumps({"event_type": "join", "access_token": call["access_token"], "sample_rate": RATE}))
            events: list[dict[str, Any]] = []
            async with asyncio.timeout(30):
                async for message in ws:
                    if isinstance(message, str):
                        events.append({**json.loads(message), "at": time.monotonic()})
            close_code = ws.close_code

    started, last = events[0], events[-1]
    assert started["event_type"] == "call_started" and close_code == 1000
    assert last["event_type"] == "call_ended" and last["disconnection_reason"] == "error_no_audio_received", last
    assert 9.5 < last["at"] - started["at"] < 14.0, last["at"] - started["at"]  # the engine waits 10 s
    ended = await ended_call(live_server, call["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"]) == ("error", "error_no_audio_received")
    assert said_by(ended["transcript_object"]) == [("agent", GREETING)], ended["transcript_object"]


async def run_until_the_llm_fails(
    server: ServerProcess, fail: Callable[[ScriptedLlm, ServerConnection], Awaitable[None]], accept: int = 100
) -> tuple[ScriptedLlm, WebCaller, dict[str, Any]]:
    """A call whose LLM greets, waits until the greeting has been spoken, then does `fail`."""

    async def handler(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await llm.say(ws, 0, GREETING)
        await llm.next_where(ws, lambda m: spoken_fully(m, GREETING))
        await fail(llm, ws)
        await llm.answer(ws, lambda m: "Okay.")

    async with ScriptedLlm(handler, accept) as llm:
        call = await web_call(server, llm)
        async with WebCaller(socket_url(server), call["access_token"], RATE) as caller:
            async with asyncio.timeout(30):
                await caller.wait_ended()
        async with asyncio.timeout(5):
            await llm.wait_until(lambda: len(llm.close_codes) >= 1)
    return llm, caller, await ended_call(server, call["call_id"])


def spoken_fully(message: dict[str, Any], text: str) -> bool:
    """An update_only whose transcript has the agent's `text` complete (sent when playback finishes)."""
    return message["interaction_type"] == "update_only" and ("agent", text) in said_by(message["transcript"])


async def test_the_llm_closing_its_socket_with_1000_hangs_up(live_server: ServerProcess) -> None:
    async def close_normally(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await ws.close(1000, "bye")

    llm, caller, ended = await run_until_the_llm_fails(live_server, close_normally)
    assert caller.events("call_ended") == [{"event_type": "call_ended", "disconnection_reason": "agent_hangup"}]
    assert caller.close_code == 1000 and llm.attempts == 1
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", "agent_hangup")
    assert said_by(ended["transcript_object"]) == [("agent", GREETING)], ended["transcript_object"]


async def test_an_ended_call_gives_the_memory_it_freed_back(live_server: ServerProcess) -> None:
    """After a call the server trims the C heap (at most every 5 s): `heap_trims` goes up."""

    async def trims() -> int:
        async with api_client(live_server) as api:
            return int((await api.get("/voxline/runtime")).json()["heap_trims"])

    async def close_normally(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await ws.close(1000, "bye")

    before = await trims()
    await run_until_the_llm_fails(live_server, close_normally)
    for _ in range(75):  # 15 s
        if await trims() > before:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no heap trim after the call ended ({before} before)")


async def test_an_llm_lost_mid_call_that_refuses_reconnects_ends_with_lost_connection(
    live_server: ServerProcess,
) -> None:
    async def drop(llm: ScriptedLlm, ws: ServerConnection) -> None:
        ws.transport.abort()  # no closing handshake: Voxline sees 1006 and redials

    llm, caller, ended = await run_until_the_llm_fails(live_server, drop, accept=1)
    reason = "error_llm_websocket_lost_connection"
    assert caller.events("call_ended") == [{"event_type": "call_ended", "disconnection_reason": reason}]
    assert llm.attempts == 3, "one socket and the documented 2 reconnects"
    assert (ended["call_status"], ended["disconnection_reason"]) == ("error", reason)
    assert said_by(ended["transcript_object"]) == [("agent", GREETING)], ended["transcript_object"]


async def test_a_binary_frame_from_the_llm_ends_with_corrupt_payload(live_server: ServerProcess) -> None:
    async def send_binary(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await ws.send(b"\x00\x01 not text")

    llm, caller, ended = await run_until_the_llm_fails(live_server, send_binary)
    reason = "error_llm_websocket_corrupt_payload"
    assert caller.events("call_ended") == [{"event_type": "call_ended", "disconnection_reason": reason}]
    assert llm.close_codes == [1007] and llm.attempts == 1
    assert (ended["call_status"], ended["disconnection_reason"]) == ("error", reason)
    assert said_by(ended["transcript_object"]) == [("agent", GREETING)], ended["transcript_object"]


async def test_max_call_duration_ends_the_call_after_60_s(live_server: ServerProcess) -> None:
    async def handler(llm: ScriptedLlm, ws: ServerConnection) -> None:
        await llm.say(ws, 0, GREETING)
        await llm.answer(ws, lambda m: "Are you still there?")

    async with ScriptedLlm(handler) as llm:
        call = await web_call(live_server, llm, max_call_duration_ms=60_000)
        async with WebCaller(socket_url(live_server), call["access_token"], RATE) as caller:
            joined = time.monotonic()
            async with asyncio.timeout(75):
                await caller.wait_ended()
            ended_at = time.monotonic()

    reason = "max_duration_reached"
    assert caller.events("call_ended") == [{"event_type": "call_ended", "disconnection_reason": reason}]
    assert 59.8 < ended_at - joined < 63.0, ended_at - joined
    ended = await ended_call(live_server, call["call_id"])
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", reason)
    assert 59_500 < ended["duration_ms"] < 62_000, ended["duration_ms"]
    assert said_by(ended["transcript_object"])[0] == ("agent", GREETING), ended["transcript_object"]
