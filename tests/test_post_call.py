"""After the call, end to end: a real `voxline serve` (real speech models), the built-in LLM on an
OpenAI-protocol server of the tests' own, a scripted caller, and a real webhook receiver. What a
developer reads afterwards must be true: word timings that line up with the recording, an agent
transcript cut where its audio was cut, latency that agrees with the public log, signed webhooks
the official verifiers accept, delivered once and in order across a restart, and nothing kept for
a call that opted out of storage."""

import asyncio
import io
import json
import re
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from retell.lib.webhook_auth import verify

from tests import openai_fake as fake
from tests.caller import WebCaller
from tests.live_helpers import agent_turn_done, sdk, socket_url, until
from tests.node_verify import node_verify
from tests.servers import ServerProcess
from tests.tool_server import Reply, ToolServer, running_tool_server

pytestmark = pytest.mark.slow
RATE = 16_000
LONG_REPLY = (
    "Yes, your book has arrived and is waiting for you at the front desk of the main library. "
    "You can pick it up any day this week between nine in the morning and eight in the evening, "
    "and please remember to bring your library card with you when you come."
)
ANALYSIS = {
    "call_summary": "The caller asked about a reserved book and the opening hours.",
    "user_sentiment": "Positive",
    "call_successful": True,
    "in_voicemail": False,
    "custom_analysis_data": {"topic": "books"},
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[ToolServer]:
    with running_tool_server() as server:
        yield server


def server_env(provider: fake.FakeOpenAi, **extra: str) -> dict[str, str]:
    return {
        "VOXLINE_LLM_BASE_URL": provider.base_url,
        "VOXLINE_ALLOW_PRIVATE_TOOL_URLS": "true",  # the tool server and the webhook receiver are on loopback
        "VOXLINE_WEBHOOK_RETRY_BASE_MS": "300",
        **extra,
    }


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, provider: fake.FakeOpenAi) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("post-call"), env_overrides=server_env(provider, VOXLINE_PRELOAD_SPEECH="true")
    )
    try:
        yield server.start(timeout=90)
    finally:
        server.close()


def llm_reply(body: dict[str, Any]) -> fake.Reply:
    """The library agent: a tool call, a long answer (to be interrupted), short answers, goodbye."""
    if body.get("stream") is False:  # the post-call analysis
        return fake.text(json.dumps(ANALYSIS))
    message = body["messages"][-1]
    users = [m for m in body["messages"] if m["role"] == "user"]
    if message["role"] == "tool":
        return fake.text(LONG_REPLY)
    if len(users) == 1:
        return fake.tool_call("lookup_book", {"patron": "Ada"}, id="call_lookup", split=3)
    if "bye" in message["content"].lower():
        return fake.tool_call("end_call", {}, id="call_end", text_before="Goodbye, see you soon!")
    return fake.text("We close at eight tonight.")


def library_llm(tool_url: str) -> dict[str, Any]:
    return {
        "general_prompt": "You are the library's phone assistant.",
        "begin_message": "Hello, this is the city library.",
        "general_tools": [
            {"type": "end_call", "name": "end_call"},
            {
                "type": "custom",
                "name": "lookup_book",
                "url": tool_url,
                "parameters": {"type": "object", "properties": {"patron": {"type": "string"}}},
            },
        ],
    }


def hooks(receiver: ToolServer, call_id: str) -> list[dict[str, Any]]:
    """Webhook requests the receiver got for one call, in arrival order: parsed body and raw parts."""
    out = []
    for seen in list(receiver.requests):
        if not seen.path.startswith("/hooks/"):
            continue
        body = json.loads(seen.text)
        if body["call"]["call_id"] == call_id:
            out.append({"event": body["event"], "body": body, "raw": seen.text, "seen": seen})
    return out


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as wav:
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, channels)
    return samples, rate


def rms(samples: np.ndarray) -> float:
    x = samples.astype(np.float32)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def norm(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


async def heard(asr: Any, channel: np.ndarray, rate: int, start: float, end: float) -> str:
    """What Whisper hears in [start, end] of one recording channel (seconds on the call clock)."""
    piece = channel[max(0, int((start - 0.12) * rate)) : int((end + 0.12) * rate)].astype(np.float32) / 32768
    return (await asr.transcribe(piece)).text


async def test_a_call_leaves_a_true_record_and_signed_webhooks(
    live_server: ServerProcess, provider: fake.FakeOpenAi, receiver: ToolServer, speech_asr: Any
) -> None:
    provider.respond(llm_reply)
    receiver.reset().script(Reply(body='{"status": "arrived", "shelf": "front desk"}'))
    with sdk(live_server) as client:
        llm = client.llm.create(**library_llm(receiver.url + "/tools/lookup"))
        agent = client.agent.create(
            voice_id="piper-joe",
            response_engine={"type": "retell-llm", "llm_id": llm.llm_id},
            webhook_url=receiver.url + "/hooks/{{branch}}",
            webhook_events=["call_started", "call_ended", "call_analyzed", "transcript_updated"],
            post_call_analysis_data=[{"type": "string", "name": "topic", "description": "What the call was about"}],
        )
        created = client.call.create_web_call(agent_id=agent.agent_id, retell_llm_dynamic_variables={"branch": "main"})
    call_id = created.call_id

    async with WebCaller(socket_url(live_server), created.access_token, RATE) as caller:
        greeted = await agent_turn_done(caller, 0.0)
        await caller.say("Hello, could you check whether my book has arrived please?")
        async with asyncio.timeout(40):
            long_started = await caller.wait_event("agent_start_talking", greeted)
        await asyncio.sleep(max(0.0, long_started + 2.5 - time.monotonic()))
        interrupted = await caller.say("Sorry, what time do you close tonight?")
        answered = await agent_turn_done(caller, interrupted)
        await asyncio.sleep(0.3)
        await caller.say("Thank you, goodbye.")
        async with asyncio.timeout(40):
            await caller.wait_ended()
        assert answered > interrupted

    async with asyncio.timeout(60):
        await until(lambda: any(h["event"] == "call_analyzed" for h in hooks(receiver, call_id)), 60, "call_analyzed")
    with sdk(live_server) as client:
        call = client.call.retrieve(call_id).model_dump(mode="json", exclude_none=True)

    assert call["disconnection_reason"] == "agent_hangup"
    story = call["transcript_with_tool_calls"]
    agent_lines = [u for u in call["transcript_object"] if u["role"] == "agent"]
    cut = next(u for u in agent_lines if u["content"] and LONG_REPLY.startswith(u["content"][:20]))
    assert len(cut["content"]) < len(LONG_REPLY) - 20, cut["content"]  # cut by the barge-in
    assert [i["role"] for i in story if i["role"].startswith("tool")][:2] == [
        "tool_call_invocation",
        "tool_call_result",
    ]

    # The recording: two aligned channels, on the transcript's clock.
    async with httpx.AsyncClient(timeout=30) as web:
        api = {"Authorization": f"Bearer {live_server.api_key}"}
        stereo, rate = read_wav((await web.get(call["recording_multi_channel_url"], headers=api)).content)
        mixed, _ = read_wav((await web.get(call["recording_url"], headers=api)).content)
        assert (await web.get(call["recording_url"])).status_code == 401  # needs the key (no signed URLs)
        public_log = (await web.get(call["public_log_url"], headers=api)).text
    assert stereo.shape[1] == 2 and rate == RATE
    assert mixed.shape == (len(stereo), 1)
    user_channel, agent_channel = stereo[:, 0], stereo[:, 1]

    first_user = next(u for u in call["transcript_object"] if u["role"] == "user")
    word = max(first_user["words"], key=lambda w: len(norm(w["word"])))
    text = await heard(speech_asr, user_channel, rate, word["start"], word["end"])
    assert norm(word["word"]) in norm(text), (word, text)
    # the same cut of the other channel holds none of it: the channels are separate
    assert norm(word["word"]) not in norm(await heard(speech_asr, agent_channel, rate, word["start"], word["end"]))

    # An agent span of three words in the middle of the cut reply: a single word cut out of a
    # sentence is sometimes misheard by tiny.en ("waiting" as "wedding"), so two of the three must be
    # heard; a timing off by a word or more loses at least two of them.
    played = cut["words"][:-1]
    spans = [played[i : i + 3] for i in range(len(played) - 2)]
    spans = [s for s in spans if all(len(norm(w["word"])) >= 3 for w in s)]  # no "a" or "is" matching anywhere
    span = spans[len(spans) // 2]
    text = await heard(speech_asr, agent_channel, rate, span[0]["start"], span[-1]["end"])
    found = [w["word"] for w in span if norm(w["word"]) in norm(text)]
    assert len(found) >= 2, (span, text)

    # The interrupted reply: its transcript holds the words fully played; the audio stops within
    # the next word (cut mid-word by the barge-in), then the agent channel is silent until its next reply.
    cut_end = cut["words"][-1]["end"]
    next_reply = agent_lines[agent_lines.index(cut) + 1]["words"][0]["start"]
    tail = np.abs(agent_channel[int(cut_end * rate) : int(next_reply * rate)].astype(np.int32))
    loud = np.flatnonzero(tail > 500)
    stopped = cut_end + (loud[-1] / rate if loud.size else 0.0)
    assert stopped - cut_end < 0.8, (cut_end, stopped)
    assert rms(agent_channel[int((stopped + 0.05) * rate) : int((next_reply - 0.05) * rate)]) < 30
    assert rms(agent_channel[int((cut_end - 0.6) * rate) : int((cut_end - 0.05) * rate)]) > 300

    # Latency: the same numbers as the per-turn log.
    logged_e2e = [int(v) for v in re.findall(r"\| e2e (\d+) ms", public_log)]
    assert logged_e2e and logged_e2e == call["latency"]["e2e"]["values"]
    assert call["latency"]["e2e"]["num"] == len(logged_e2e) >= 2
    assert {"asr", "llm", "tts"} <= set(call["latency"])
    assert "lookup_book" in public_log and "call_lookup" in public_log

    # Analysis from the configured endpoint, with the agent's custom item.
    assert call["call_analysis"] == ANALYSIS
    analysis_request = next(r for r in provider.requests if r.get("stream") is False)
    assert "topic" in analysis_request["messages"][0]["content"]

    # Webhooks: to the rendered URL, in order, signed for both official verifiers, with the right payloads.
    delivered = hooks(receiver, call_id)
    events = [h["event"] for h in delivered]
    assert events[0] == "call_started" and events[-2:] == ["call_ended", "call_analyzed"]
    assert set(events[1:-2]) == {"transcript_updated"} and len(events) >= 5
    assert all(h["seen"].path == "/hooks/main" for h in delivered)
    for h in delivered:
        signature = h["seen"].headers["x-retell-signature"]
        assert verify(h["raw"], api_key=live_server.api_key, signature=signature), h["event"]
        assert h["body"]["data"] == h["body"]["call"]
    items = [
        {"body": h["raw"], "signature": h["seen"].headers["x-retell-signature"], "api_key": live_server.api_key}
        for h in delivered
    ]
    assert node_verify(items) == [True] * len(items)
    assert node_verify([{**i, "reserialize": True} for i in items]) == [True] * len(items)
    ended, analyzed = delivered[-2]["body"]["call"], delivered[-1]["body"]["call"]
    assert "call_analysis" not in ended and ended["transcript"].startswith("Agent: Hello, this is the city library.")
    assert ended["recording_url"] and analyzed["call_analysis"] == ANALYSIS
    assert "transcript_with_tool_calls" in delivered[1]["body"]["call"]

    # Rerunning the analysis (say, after changing the agent's analysis items) sends call_analyzed again.
    rerun_analysis = {**ANALYSIS, "call_summary": "Second opinion."}
    provider.respond(lambda body: fake.text(json.dumps(rerun_analysis)))
    with sdk(live_server) as client:
        rerun = client.call.rerun_analysis(call_id)
    assert rerun.call_analysis is not None and rerun.call_analysis.call_summary == "Second opinion."
    await until(
        lambda: (
            [h["event"] for h in hooks(receiver, call_id)][-1:] == ["call_analyzed"]
            and len(hooks(receiver, call_id)) == len(delivered) + 1
        ),
        20,
        "the second call_analyzed",
    )


async def test_webhooks_survive_a_failing_receiver_and_a_restart_in_order_and_once(
    make_server: Any, provider: fake.FakeOpenAi, receiver: ToolServer
) -> None:
    server: ServerProcess = make_server(
        **server_env(provider, VOXLINE_REGISTERED_CALL_TIMEOUT_MS="1000", VOXLINE_WEBHOOK_RETRY_BASE_MS="1500")
    ).start()
    receiver.reset().script(Reply(status=500), Reply(status=503))
    with sdk(server) as client:
        agent = client.agent.create(
            voice_id="piper-joe",
            response_engine={"type": "custom-llm", "llm_websocket_url": "ws://127.0.0.1:9/llm"},
            webhook_url=receiver.url + "/hooks/restart",
        )
        call_id = client.call.create_web_call(agent_id=agent.agent_id).call_id  # nobody joins
    await until(lambda: len(hooks(receiver, call_id)) >= 2, 20, "two failed deliveries")
    server.stop()  # the second failure's retry is pending
    failed = len(hooks(receiver, call_id))
    server.start()
    await until(
        lambda: [h["event"] for h in hooks(receiver, call_id)][failed:] == ["call_ended", "call_analyzed"],
        30,
        "delivery after the restart",
    )
    server.stop()
    server.start()  # nothing delivered is sent again
    await asyncio.sleep(2.5)
    deliveries = hooks(receiver, call_id)
    assert [h["event"] for h in deliveries] == ["call_ended"] * failed + ["call_ended", "call_analyzed"]
    for h in deliveries:
        assert verify(h["raw"], api_key=server.api_key, signature=h["seen"].headers["x-retell-signature"])
    assert deliveries[-2]["body"]["call"]["disconnection_reason"] == "error_user_not_joined"


def found_in(paths: list[Path], needle: bytes) -> list[str]:
    return [str(p) for p in paths if p.is_file() and needle in p.read_bytes().lower()]


async def test_opted_out_storage_keeps_nothing_the_caller_said(
    live_server: ServerProcess, provider: fake.FakeOpenAi, receiver: ToolServer
) -> None:
    provider.respond(
        lambda body: fake.text(json.dumps(ANALYSIS)) if body.get("stream") is False else fake.text("I see.")
    )
    receiver.reset()
    call_ids = {}
    with sdk(live_server) as client:
        llm_id = client.llm.create(begin_message="Hello.").llm_id
        for storage, phrase in (
            ("everything", "I would like a banana smoothie."),
            ("basic_attributes_only", "My favourite animal is the elephant."),
        ):
            agent = client.agent.create(
                voice_id="piper-joe",
                response_engine={"type": "retell-llm", "llm_id": llm_id},
                webhook_url=receiver.url + "/hooks/privacy",
                data_storage_setting=storage,
                opt_in_signed_url=True,
                signed_url_expiration_ms=60_000,
            )
            created = client.call.create_web_call(agent_id=agent.agent_id)
            call_ids[storage] = created.call_id
            async with WebCaller(socket_url(live_server), created.access_token, RATE) as caller:
                greeted = await agent_turn_done(caller, 0.0)
                await caller.say(phrase)
                await agent_turn_done(caller, greeted)
            await until(
                lambda cid=created.call_id: any(h["event"] == "call_analyzed" for h in hooks(receiver, cid)),
                60,
                "call_analyzed",
            )
    # The LLM heard both phrases (so the words were recognised) ...
    prompts = json.dumps(provider.requests).lower()
    assert "banana" in prompts and "elephant" in prompts
    # ... but only the call that keeps everything stored them: files, database (with its WAL), webhooks.
    files = list(live_server.data_dir.rglob("*"))
    assert found_in(files, b"banana")  # the search finds what is there
    assert found_in(files, b"elephant") == []
    private_hooks = hooks(receiver, call_ids["basic_attributes_only"])
    assert [h["event"] for h in private_hooks] == ["call_started", "call_ended", "call_analyzed"]
    assert all("elephant" not in h["raw"].lower() for h in private_hooks)
    with sdk(live_server) as client:
        private = client.call.retrieve(call_ids["basic_attributes_only"]).model_dump(mode="json", exclude_none=True)
    for field in ("transcript", "transcript_object", "recording_url", "public_log_url", "collected_dynamic_variables"):
        assert field not in private
    assert private["call_analysis"] == {"user_sentiment": "Positive", "call_successful": True, "in_voicemail": False}

    # The call that kept everything has signed, expiring URLs: no key needed, Range for seeking.
    with sdk(live_server) as client:
        kept = client.call.retrieve(call_ids["everything"]).model_dump(mode="json", exclude_none=True)
    url = kept["recording_url"]
    expires = int(re.search(r"expires=(\d+)", url).group(1))  # type: ignore[union-attr]
    assert 0 < expires - time.time() * 1000 <= 60_000
    async with httpx.AsyncClient(timeout=30) as web:
        whole = await web.get(url)
        assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
        part = await web.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == whole.content[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
        tampered = url.replace(f"expires={expires}", f"expires={expires + 1}")
        assert (await web.get(tampered)).status_code == 401
        other_file = url.replace("recording.wav", "public_log.txt")  # a signature is bound to one file
        assert (await web.get(other_file)).status_code == 401


async def test_with_s3_configured_the_recording_lives_in_the_bucket_and_is_served_from_it(
    make_server: Any, tmp_path: Path
) -> None:
    from tests.moto_server import raw_client, running_moto

    with running_moto(tmp_path / "moto.log", "voxline-calls") as endpoint:
        server: ServerProcess = make_server(
            VOXLINE_S3_BUCKET="voxline-calls",
            VOXLINE_S3_ENDPOINT_URL=endpoint,
            VOXLINE_S3_ACCESS_KEY_ID="testing",
            VOXLINE_S3_SECRET_ACCESS_KEY="testing",
            VOXLINE_S3_KEY_PREFIX="prod",
        ).start(timeout=90)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as api:
            agents = (await api.get("/list-agents", headers={"Authorization": f"Bearer {server.api_key}"})).json()
        demo = next(a for a in agents if a.get("agent_name", "").startswith("Demo"))
        with sdk(server) as client:
            created = client.call.create_web_call(agent_id=demo["agent_id"])
        async with WebCaller(socket_url(server), created.access_token, RATE) as caller:
            async with asyncio.timeout(60):
                await caller.wait_event("agent_stop_talking")  # the greeting played; then the caller hangs up
        with sdk(server) as client:
            for _ in range(100):
                call = client.call.retrieve(created.call_id)
                if call.recording_url:
                    break
                await asyncio.sleep(0.1)
        assert call.disconnection_reason == "user_hangup" and call.recording_url
        bucket = raw_client(endpoint)
        stored = bucket.get_object(Bucket="voxline-calls", Key=f"prod/calls/{call.call_id}/recording.wav")[
            "Body"
        ].read()
        async with httpx.AsyncClient(timeout=30) as web:
            served = await web.get(call.recording_url, headers={"Authorization": f"Bearer {server.api_key}"})
            public_log = (
                await web.get(call.public_log_url, headers={"Authorization": f"Bearer {server.api_key}"})
            ).text
        assert served.status_code == 200 and served.content == stored
        # the custom LLM's socket, both ways, in the public log (also kept in the bucket)
        assert (
            re.search(r"-> llm +conn #1 +\{", public_log)
            and '<- llm  conn #1  {"response_type":"response"' in public_log
        )
        samples, rate = read_wav(stored)
        assert rate == RATE and rms(samples) > 100  # the greeting is in it
        assert not (server.data_dir / "calls").exists()  # nothing under the data directory
        await until(lambda: not any((server.data_dir / "tmp").rglob("*.raw")), 10, "temporary files removed")
