"""The talk page (/app/) and the web client SDK (/sdk/) in a real headless Chromium, against a real
server with the real speech models and the demo receptionist: sign in, pick the agent, talk through
a fake microphone playing flite speech, hang up; then the call as the REST API stored it.

Sync tests: Playwright's sync API cannot run inside an asyncio test."""

import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.browser import chromium, screenshot
from tests.caller import flite_speech
from tests.servers import ServerProcess
from voxline.examples.receptionist import Receptionist

pytestmark = pytest.mark.slow

RATE = 16_000
LEADING_SILENCE_S = 9.0  # the greeting (~7 s) plays out before the caller speaks: no barge-in
TRAILING_SILENCE_S = 6.0
SENTENCE = "My name is Alice."
DEMO_AGENT = "Demo receptionist (example LLM)"

# Collects what the page's client does, from before the call starts (the page dispatches a
# `voxline-client` event with the client; `voxlineRawAudio` turns on its `audio` events).
INIT_SCRIPT = """
window.voxlineRawAudio = true;
window.voxlineTest = { peak: 0, loudChunks: 0, events: [] };
window.addEventListener("voxline-client", (event) => {
  const client = event.detail;
  const seen = window.voxlineTest;
  client.on("audio", (samples) => {
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s));
    seen.peak = Math.max(seen.peak, peak);
    if (peak > 0.05) seen.loudChunks += 1;
  });
  const names = ["call_started", "call_ready", "agent_start_talking", "agent_stop_talking", "call_ended", "error"];
  for (const name of names) {
    client.on(name, (info) => seen.events.push({ name, at: performance.now(), info: info ?? null }));
  }
});
"""


@pytest.fixture(scope="module")
def talk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("talk"), env_overrides={"VOXLINE_PRELOAD_SPEECH": "true"})
    try:
        yield server.start(timeout=90)
    finally:
        server.close()


def fake_microphone(path: Path) -> float:
    """Silence, the sentence, silence, as a 16 kHz PCM16 WAV; returns where the speech ends (its
    last sample above -36 dBFS, in seconds from the file's start)."""
    speech = flite_speech(SENTENCE, RATE)
    write_wav(path, bytes(int(RATE * LEADING_SILENCE_S) * 2) + speech + bytes(int(RATE * TRAILING_SILENCE_S) * 2))
    loud = loud_samples(speech)
    return LEADING_SILENCE_S + (int(loud[-1]) + 1) / RATE


def write_wav(path: Path, pcm: bytes) -> None:
    """16 kHz mono PCM16LE `pcm` as a WAV file (what Chromium's fake microphone plays)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)


def loud_samples(pcm: bytes) -> np.ndarray:
    """Indices of the PCM16LE samples above -36 dBFS."""
    return np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)) > 500)


def events(page: Page, name: str) -> list[dict[str, object]]:
    return page.evaluate("(name) => window.voxlineTest.events.filter((e) => e.name === name)", name)


def wait_for_call_to_end(api: httpx.Client, call_id: str) -> dict[str, object]:
    for _ in range(100):
        call: dict[str, object] = api.get(f"/v2/get-call/{call_id}").json()
        if call["call_status"] != "ongoing":
            return call
        time.sleep(0.1)
    raise AssertionError(f"call {call_id} still ongoing")


def test_talk_page_call_with_the_demo_receptionist(talk_server: ServerProcess, tmp_path: Path) -> None:
    wav = tmp_path / "caller.wav"
    speech_end_s = fake_microphone(wav)
    with chromium(fake_microphone=wav) as browser:
        page = browser.new_page()
        page.add_init_script(INIT_SCRIPT)
        page.goto(talk_server.base_url + "/")  # redirects to /app/
        expect(page.locator("#sign-in")).to_be_visible()
        screenshot(page, "talk-1-sign-in")

        page.fill("#api-key", str(talk_server.api_key))
        page.click("#sign-in button[type=submit]")
        expect(page.locator("#agent option", has_text=DEMO_AGENT)).to_have_count(1)
        expect(page.locator("#sign-in")).to_be_hidden()
        assert talk_server.api_key not in page.url
        page.select_option("#agent", label=DEMO_AGENT)
        screenshot(page, "talk-2-signed-in")

        page.click("#talk-button")
        page.wait_for_function("window.voxlineTest.events.some((e) => e.name === 'call_started')", timeout=15_000)
        # The greeting: agent_start_talking reached the page and audible samples were played.
        page.wait_for_function(
            "window.voxlineTest.events.some((e) => e.name === 'agent_start_talking')"
            " && window.voxlineTest.loudChunks > 5 && window.voxline.stats.firstAudibleAt.length >= 1",
            timeout=30_000,
        )
        expect(page.locator("#agent-indicator")).to_have_attribute("data-speaking", "true")
        expect(page.locator("#transcript")).to_contain_text("Bright Smile Dental", timeout=10_000)
        screenshot(page, "talk-3-greeting")
        page.wait_for_function("window.voxlineTest.events.some((e) => e.name === 'agent_stop_talking')", timeout=20_000)
        greeting_end = events(page, "agent_stop_talking")[0]["at"]

        # The caller speaks (their indicator lights from the microphone level), their sentence
        # reaches the live transcript, then the agent answers (a second turn).
        expect(page.locator("#user-indicator")).to_have_attribute("data-speaking", "true", timeout=15_000)
        screenshot(page, "talk-4-caller-speaking")
        expect(page.locator("#transcript li[data-role=user]")).to_contain_text("Alice", timeout=30_000)
        screenshot(page, "talk-5-caller-heard")
        page.wait_for_function(
            "(end) => window.voxline.stats.firstAudibleAt.some("
            "(t) => t > window.voxline.stats.captureStartedAt + end * 1000)",
            arg=speech_end_s,
            timeout=30_000,
        )
        stats = page.evaluate("window.voxline.stats")
        assert len(events(page, "agent_start_talking")) >= 2
        screenshot(page, "talk-6-agent-answering")
        # The server adds the agent's words to `update` as they have been spoken.
        expect(page.locator("#transcript li[data-role=agent]").last).to_contain_text("Nice to meet you", timeout=20_000)
        screenshot(page, "talk-7-agent-answered")

        page.click("#hang-up")
        page.wait_for_function("window.voxlineTest.events.some((e) => e.name === 'call_ended')", timeout=10_000)
        expect(page.locator("#call-link")).to_be_visible()
        call_id = page.locator("#call-id").inner_text()
        assert page.locator("#console-link").get_attribute("href") == f"/console/#/calls/{call_id}"
        screenshot(page, "talk-8-ended")
        page.click("#sign-out")
        expect(page.locator("#sign-in")).to_be_visible()
        assert page.evaluate("sessionStorage.length") == 0
        ended_events = events(page, "call_ended")
        errors = events(page, "error")

    assert not errors, errors
    assert ended_events[0]["info"]["disconnection_reason"] == "user_hangup", ended_events
    assert stats["framesSent"] > 100 and stats["framesReceived"] > 50, stats
    assert stats["underruns"] <= 2, stats  # the 60 ms jitter buffer rides out a loaded 2-core machine

    speech_end_at = stats["captureStartedAt"] + speech_end_s * 1000
    assert greeting_end < speech_end_at - 1000, "the greeting should end before the caller speaks"
    answered_at = min(t for t in stats["firstAudibleAt"] if t > speech_end_at)
    page_latency_s = (answered_at - speech_end_at) / 1000

    with talk_server.client() as api:
        call = wait_for_call_to_end(api, call_id)
    assert (call["call_status"], call["disconnection_reason"]) == ("ended", "user_hangup")
    assert "alice" in str(call["transcript"]).lower(), call["transcript"]
    server_e2e = call["latency"].get("e2e", {}).get("p50")  # type: ignore[attr-defined]
    print(f"\nbrowser latency (end of caller speech -> first audible agent sample): {page_latency_s * 1000:.0f} ms")
    print(f"server latency.e2e p50: {server_e2e} ms; stats: {stats}")
    assert 0 < page_latency_s < 5, page_latency_s


SDK_SCRIPT = """
async (token) => {
  const { VoxlineWebClient } = await import("/sdk/voxline-web-client.js");
  const seen = [];
  const record = (client, tag) => {
    for (const name of ["call_started", "call_ready", "call_ended", "error"]) {
      client.on(name, (info) => seen.push([tag, name, info ?? null]));
    }
  };
  const first = new VoxlineWebClient({ baseUrl: location.origin });
  record(first, "first");
  await first.startCall({ accessToken: token, sampleRate: 16000 });
  const sampleRate = first.stats.contextSampleRate;
  const socketUrl = first.socketUrl;
  first.mute();
  const sentBefore = first.stats.framesSent;
  await new Promise((resolve) => setTimeout(resolve, 500));
  const sentMuted = first.stats.framesSent - sentBefore;
  const muted = first.isMuted;
  first.unmute();

  const second = new VoxlineWebClient({ baseUrl: location.origin });
  record(second, "second");
  await second.startCall({ accessToken: token });  // a token joins once: refused with 4001

  first.stopCall();
  first.stopCall();  // idempotent
  return { seen, sentMuted, muted, sampleRate, socketUrl };
}
"""


def test_sdk_mute_refusal_and_idempotent_hang_up(talk_server: ServerProcess) -> None:
    """The SDK alone: mute keeps streaming (silence), a refused join emits `error`, stopCall()
    twice ends the call once as user_hangup."""
    with talk_server.client() as api:
        agents = api.get("/list-agents").json()
        agent_id = next(a["agent_id"] for a in agents if a.get("agent_name") == DEMO_AGENT)
        call = api.post("/v3/create-web-call", json={"agent_id": agent_id}).json()
        with chromium() as browser:
            page = browser.new_page()
            page.goto(talk_server.base_url + "/app/")
            result = page.evaluate(SDK_SCRIPT, call["access_token"])
        ended = wait_for_call_to_end(api, call["call_id"])

    seen = [(tag, name) for tag, name, _ in result["seen"]]
    assert seen == [
        ("first", "call_started"),
        ("first", "call_ready"),
        ("second", "error"),
        ("first", "call_ended"),
    ], result["seen"]
    assert result["seen"][2][2] == "Error starting call"
    assert result["seen"][3][2]["disconnection_reason"] == "user_hangup"
    assert result["muted"] and result["sentMuted"] >= 15, result  # 20 ms frames keep flowing while muted
    assert result["sampleRate"] == 16_000
    assert result["socketUrl"] == f"ws://127.0.0.1:{talk_server.port}/web-call-websocket"
    assert (ended["call_status"], ended["disconnection_reason"]) == ("ended", "user_hangup")


BARGE_IN_AT_S = 2.5  # the caller starts talking ~2.5 s into the call, mid-greeting
BARGE_IN_SENTENCE = "Sorry, can you repeat that?"
GREETING = Receptionist().greeting()  # ~7 s spoken
AUDIBLE = 0.01  # the SDK's AUDIBLE_THRESHOLD

# On top of INIT_SCRIPT: every played 20 ms chunk (when, its peak, the jitter buffer then) and the
# server's JSON events as they reach the page's socket (to see `clear`, which the SDK does not emit).
BARGE_IN_SCRIPT = """
window.voxlineTest.chunks = [];
window.voxlineTest.socket = [];
window.addEventListener("voxline-client", (event) => {
  const client = event.detail;
  client.on("audio", (samples) => {
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s));
    window.voxlineTest.chunks.push({ at: performance.now(), peak, bufferedMs: client.stats.bufferedMs });
  });
});
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      try {
        const message = JSON.parse(event.data);
        window.voxlineTest.socket.push({ type: message.event_type, at: performance.now() });
      } catch {}
    });
  }
};
"""


def sign_in_and_pick_the_demo_agent(page: Page, server: ServerProcess) -> None:
    page.goto(server.base_url + "/app/")
    page.fill("#api-key", str(server.api_key))
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#agent option", has_text=DEMO_AGENT)).to_have_count(1)
    page.select_option("#agent", label=DEMO_AGENT)


def test_talk_page_barge_in_cuts_the_greeting(talk_server: ServerProcess, tmp_path: Path) -> None:
    """The caller talks over the greeting: the server stops the agent and sends `clear`, the page
    drops the buffered greeting at once and stays quiet until the agent's next turn; the stored
    call keeps only the part of the greeting that was played."""
    speech = flite_speech(BARGE_IN_SENTENCE, RATE)
    onset_s = BARGE_IN_AT_S + int(loud_samples(speech)[0]) / RATE
    wav = tmp_path / "barge-in.wav"
    write_wav(wav, bytes(int(RATE * BARGE_IN_AT_S) * 2) + speech + bytes(int(RATE * 8.0) * 2))

    with chromium(fake_microphone=wav) as browser:
        page = browser.new_page()
        page.add_init_script(INIT_SCRIPT)
        page.add_init_script(BARGE_IN_SCRIPT)
        sign_in_and_pick_the_demo_agent(page, talk_server)
        page.click("#talk-button")
        page.wait_for_function("window.voxlineTest.events.some((e) => e.name === 'agent_stop_talking')", timeout=30_000)
        # The page shows the floor passing to the caller (who is still talking).
        expect(page.locator("#agent-indicator")).to_have_attribute("data-speaking", "false", timeout=1_000)
        expect(page.locator("#user-indicator")).to_have_attribute("data-speaking", "true", timeout=1_000)
        screenshot(page, "talk-barge-in")
        # The agent's next turn (its answer to the caller), then a moment of it, then hang up.
        page.wait_for_function(
            "window.voxlineTest.events.filter((e) => e.name === 'agent_start_talking').length >= 2"
            " && window.voxline.stats.firstAudibleAt.length >= 2",
            timeout=40_000,
        )
        page.wait_for_timeout(500)
        page.click("#hang-up")
        page.wait_for_function("window.voxlineTest.events.some((e) => e.name === 'call_ended')", timeout=10_000)
        call_id = page.locator("#call-id").inner_text()
        seen = page.evaluate("window.voxlineTest")
        stats = page.evaluate("window.voxline.stats")

    starts = [e["at"] for e in seen["events"] if e["name"] == "agent_start_talking"]
    stops = [e["at"] for e in seen["events"] if e["name"] == "agent_stop_talking"]
    errors = [e for e in seen["events"] if e["name"] == "error"]
    assert not errors, errors
    onset_at = stats["captureStartedAt"] + onset_s * 1000
    stop_at = stops[0]
    next_start_at = starts[1]

    # A real barge-in: the greeting was audible before the caller spoke, and was stopped after.
    assert starts[0] < onset_at and stats["firstAudibleAt"][0] < onset_at, (starts, stats)
    cut_after_ms = stop_at - onset_at
    assert 0 < cut_after_ms < 1500, f"agent_stop_talking {cut_after_ms:.0f} ms after the caller's speech onset"
    clears = [m["at"] for m in seen["socket"] if m["type"] == "clear"]
    assert len(clears) == 1 and onset_at < clears[0] < stop_at + 200, (clears, onset_at, stop_at)
    clear_at = clears[0]

    # `clear` empties the jitter buffer at once: the worklet's next reports (every ~50 ms) say
    # 0 ms, and nothing new is queued through the cut.
    after_clear = [c for c in seen["chunks"] if c["at"] > clear_at]
    emptied_at = next(c["at"] for c in after_clear if c["bufferedMs"] == 0)
    assert emptied_at - clear_at < 100, f"buffer still holding audio {emptied_at - clear_at:.0f} ms after clear"
    refilled = [c for c in after_clear if emptied_at <= c["at"] < stop_at + 300 and c["bufferedMs"] > 0]
    assert not refilled, refilled
    held_ms = max((c["bufferedMs"] for c in seen["chunks"] if clear_at - 200 < c["at"] <= clear_at), default=0)

    # Silence from 300 ms after the stop until the agent's next turn.
    quiet = [c for c in seen["chunks"] if stop_at + 300 <= c["at"] < next_start_at]
    assert next_start_at - stop_at > 600, (stop_at, next_start_at)
    assert len(quiet) >= 10, len(quiet)
    loud = [c for c in quiet if c["peak"] >= AUDIBLE]
    assert not loud, f"agent audio after the cut: {loud[:5]}"
    # ... and the agent's next turn was heard.
    assert any(t > next_start_at for t in stats["firstAudibleAt"]), stats

    with talk_server.client() as api:
        call = wait_for_call_to_end(api, call_id)
    assert (call["call_status"], call["disconnection_reason"]) == ("ended", "user_hangup")
    transcript = call["transcript_object"]
    first_agent = next(u for u in transcript if u["role"] == "agent")["content"]
    said = first_agent.split()
    assert 1 <= len(said) < len(GREETING.split()), first_agent
    assert said == GREETING.split()[: len(said)], first_agent
    print(
        f"\nbarge-in: agent_stop_talking {cut_after_ms:.0f} ms after the speech onset;"
        f" clear {clear_at - stop_at:+.0f} ms from it; buffer {held_ms:.0f} ms -> 0 ms {emptied_at - clear_at:.0f} ms"
        f" after clear; greeting cut to {first_agent!r};"
        f" next turn {next_start_at - stop_at:.0f} ms after the stop; transcript: {call['transcript']!r}"
    )
