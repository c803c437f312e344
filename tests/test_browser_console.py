"""The call console (`/console/`) in a real Chromium against a real server with real ended calls:
one full call with the demo receptionist (recording, transcript, latency, analysis, log) and one
whose agent keeps only basic attributes.

Sync tests: Playwright's sync API cannot run inside an asyncio test, so the live calls run in their
own `asyncio.run`."""

import asyncio
import io
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, Route

from tests.browser import chromium, screenshot
from tests.caller import WebCaller
from tests.servers import ServerProcess

pytestmark = pytest.mark.slow
RATE = 16_000
DEMO = "Demo receptionist (example LLM)"


@dataclass
class Calls:
    server: ServerProcess
    full: dict[str, Any]
    basic: dict[str, Any]
    demo_agent_id: str
    basic_agent_id: str


async def _talk(server: ServerProcess, access_token: str, say: str | None) -> None:
    """Join, let the agent greet; optionally say `say` and wait for the answer; hang up."""
    url = f"ws://127.0.0.1:{server.port}/web-call-websocket"
    async with WebCaller(url, access_token, RATE) as caller:
        async with asyncio.timeout(40):
            if say is None:
                await caller.wait_event("agent_start_talking")
                return
            await caller.wait_event("agent_stop_talking")
            spoken = await caller.say(say)
            await caller.wait_event("agent_start_talking", spoken)
            await caller.wait_event("agent_stop_talking", spoken)


def _wait_for(api: httpx.Client, call_id: str, done: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        call: dict[str, Any] = api.get(f"/v2/get-call/{call_id}").json()
        if done(call) or time.monotonic() > deadline:
            return call
        time.sleep(0.2)


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Calls]:
    server = ServerProcess(tmp_path_factory.mktemp("console"), env_overrides={"VOXLINE_PRELOAD_SPEECH": "true"})
    server.start(timeout=90)
    try:
        with server.client() as api:
            demo = next(a for a in api.get("/list-agents").json() if a.get("agent_name") == DEMO)
            basic_agent = api.post(
                "/create-agent",
                json={
                    "agent_name": "Basic attributes only",
                    "voice_id": demo["voice_id"],
                    "response_engine": demo["response_engine"],
                    "data_storage_setting": "basic_attributes_only",
                },
            ).json()
            full = api.post("/v3/create-web-call", json={"agent_id": demo["agent_id"]}).json()
            basic = api.post("/v3/create-web-call", json={"agent_id": basic_agent["agent_id"]}).json()
            asyncio.run(_talk(server, full["access_token"], "My name is Alice."))
            asyncio.run(_talk(server, basic["access_token"], None))
            ended = _wait_for(api, full["call_id"], lambda c: c["call_status"] == "ended" and c.get("call_analysis"))
            basic_ended = _wait_for(api, basic["call_id"], lambda c: c["call_status"] == "ended")
        assert ended["call_analysis"] and ended["recording_url"] and ended["latency"]["e2e"]["values"], ended
        assert basic_ended["call_status"] == "ended" and basic_ended.get("recording_url") is None, basic_ended
        yield Calls(server, ended, basic_ended, demo["agent_id"], basic_agent["agent_id"])
    finally:
        server.close()


def _sign_in(page: Page, server: ServerProcess) -> None:
    page.goto(server.base_url + "/console/")
    page.fill("#api-key", "key_wrong")
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#sign-in-error:has-text('did not work')")
    assert page.evaluate("sessionStorage.getItem('voxline.apiKey')") is None
    assert server.api_key
    page.fill("#api-key", server.api_key)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("body[data-view=calls][data-ready=true]")


def _apply_filters(page: Page, **values: str) -> None:
    for name, value in values.items():
        page.select_option(f"#filter-{name}", value)
    page.click("#filters button[type=submit]")
    page.wait_for_function("!document.getElementById('calls-status').textContent.startsWith('Loading')")


def _row_ids(page: Page) -> list[str]:
    return page.eval_on_selector_all("#calls-body tr", "rows => rows.map(r => r.dataset.callId)")


def _open_call(page: Page, call_id: str) -> None:
    page.click(f"#calls-body tr[data-call-id='{call_id}'] a")
    page.wait_for_selector("body[data-view=call][data-ready=true]")


def test_the_console_lists_and_shows_an_ended_call(calls: Calls) -> None:
    server, call = calls.server, calls.full
    assert server.api_key
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        _sign_in(page, server)
        assert {call["call_id"], calls.basic["call_id"]} <= set(_row_ids(page))
        row = page.locator(f"#calls-body tr[data-call-id='{call['call_id']}']")
        assert DEMO in row.inner_text() and "user_hangup" in row.inner_text()
        assert f"{round(call['latency']['e2e']['p50'])} ms" in row.inner_text()
        screenshot(page, "console-list")

        _apply_filters(page, agent=calls.demo_agent_id)
        assert _row_ids(page) == [call["call_id"]]
        _apply_filters(page, agent=calls.basic_agent_id)
        assert _row_ids(page) == [calls.basic["call_id"]]
        _apply_filters(page, agent="", status="error")
        assert _row_ids(page) == []
        _apply_filters(page, agent=calls.demo_agent_id, status="ended", reason="user_hangup")
        assert _row_ids(page) == [call["call_id"]]
        page.fill("#filter-from", "2000-01-01T00:00")
        page.fill("#filter-to", "2000-12-31T00:00")
        _apply_filters(page)
        assert _row_ids(page) == []
        page.fill("#filter-to", "")
        _apply_filters(page)
        assert _row_ids(page) == [call["call_id"]]
        screenshot(page, "console-list-filtered")

        _open_call(page, call["call_id"])
        assert page.url.endswith(f"/console/#/calls/{call['call_id']}")
        assert page.inner_text("#call-status") == "ended"
        assert "alice" in page.inner_text("#transcript").lower()

        # The recording: loaded with the key header into a blob URL, waveform drawn.
        page.wait_for_selector("#waveform[data-drawn=true]")
        page.wait_for_function("document.getElementById('recording').readyState >= 1")
        assert page.evaluate("document.getElementById('recording').src").startswith("blob:")
        drawn = page.evaluate(
            """() => {
                const c = document.getElementById('waveform');
                const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i]) n++;
                return n;
            }"""
        )
        assert drawn > 1000, drawn

        # Clicking a word seeks the player to that word's start.
        user = next(u for u in call["transcript_object"] if u["role"] == "user")
        alice = next(w for w in user["words"] if "alice" in w["word"].lower())
        page.locator(".role-user .word", has_text=alice["word"]).first.click()
        current = page.evaluate("document.getElementById('recording').currentTime")
        assert abs(current - alice["start"]) <= 0.05, (current, alice)
        page.wait_for_selector(".word.playing")

        # Latency: one bar group per turn (the greeting is turn 1), each turn's stages side by side;
        # the e2e bars carry latency.e2e.values, each in the group of the turn it was measured in.
        latency = call["latency"]
        headers = {"Authorization": f"Bearer {server.api_key}"}
        turns = httpx.get(f"{server.base_url}/voxline/call-turns/{call['call_id']}", headers=headers).json()["turns"]
        assert page.locator("#latency-chart g.turn").count() == len(turns) >= 2
        e2e = page.eval_on_selector_all(
            "#latency-chart rect.bar[data-metric=e2e]",
            "bars => bars.map(b => [Number(b.dataset.turn), Number(b.dataset.value)])",
        )
        assert [v for _, v in e2e] == latency["e2e"]["values"]
        assert [t for t, _ in e2e] == [i for i, turn in enumerate(turns) if turn["stages"]["e2e"] is not None]
        assert turns[0]["stages"]["e2e"] is None and turns[0]["stages"]["tts"] is not None  # the greeting
        marks = page.eval_on_selector_all(
            "#latency-chart line.mark[data-metric=e2e]", "ls => ls.map(l => [l.dataset.mark, Number(l.dataset.value)])"
        )
        assert marks == [["p50", latency["e2e"]["p50"]], ["p95", latency["e2e"]["p95"]]]
        assert page.locator("#latency-table tr[data-metric=e2e]").count() == 1

        # Analysis and the public log.
        assert page.inner_text("#analysis-sentiment") == call["call_analysis"]["user_sentiment"]
        assert "Alice" in page.inner_text("#analysis-summary")
        page.wait_for_function("!document.getElementById('public-log').textContent.startsWith('Loading')")
        log = page.inner_text("#public-log")
        assert call["call_id"] in log and "user_hangup" in log
        assert page.get_attribute("#log-download", "href").startswith("blob:")
        screenshot(page, "console-call")

        # Still signed in after a reload; the key only in sessionStorage, never in a URL.
        page.reload()
        page.wait_for_selector("body[data-view=call][data-ready=true]")
        assert page.locator("#sign-in").count() == 0
        assert "alice" in page.inner_text("#transcript").lower()
        assert page.evaluate("sessionStorage.getItem('voxline.apiKey')") == server.api_key
        assert page.evaluate("localStorage.length") == 0
        assert server.api_key not in page.url
        assert requested and not [url for url in requested if server.api_key in url]
        assert any("/v2/call-files/" in url for url in requested)

        page.click("#sign-out")
        page.wait_for_selector("#sign-in")
        assert page.evaluate("sessionStorage.getItem('voxline.apiKey')") is None
        assert not errors, errors


def test_a_call_that_kept_basic_attributes_only(calls: Calls) -> None:
    server, call = calls.server, calls.basic
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _sign_in(page, server)
        _open_call(page, call["call_id"])
        assert page.inner_text("#call-storage") == "basic_attributes_only"
        for part in ("recording", "transcript-card", "public-log"):
            assert "not kept" in page.inner_text(f"section.{part}"), part
        assert page.locator("#waveform").count() == 0 and page.locator("#recording").count() == 0
        screenshot(page, "console-call-basic-attributes")


def test_console_files_are_static_and_insert_text_only() -> None:
    web = Path(__file__).resolve().parents[1] / "src" / "voxline" / "web" / "console"
    html = (web / "index.html").read_text()
    assert 'type="module" src="console.js"' in html and "http" not in html.replace("http-equiv", "")
    for name in ("console.js", "api.js", "calls.js", "call.js", "charts.js", "player.js", "dom.js"):
        assert "innerHTML" not in (web / name).read_text(), name


def _wav(seconds: float = 2.0) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(RATE * seconds)) / RATE
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    return buffer.getvalue()


def test_tool_calls_signed_urls_and_paging_with_a_stubbed_api(calls: Calls) -> None:
    """Shapes the live demo does not produce: tool calls, injected context, signed file URLs (fetched
    without the key), paging with `pagination_key`, and a call that has not ended."""
    server = calls.server
    base = server.base_url
    arguments = '{"day": "<b>Tue</b>"}'
    signed = f"{base}/v2/call-files/call_stub/recording.wav?expires=9999999999999&signature=abc"
    stub = {
        **calls.full,
        "call_id": "call_stub",
        "recording_url": signed,
        "recording_multi_channel_url": None,
        "public_log_url": f"{base}/v2/call-files/call_stub/public_log.txt",
        "transcript_with_tool_calls": [
            {"role": "user", "content": "Book me in.", "words": [{"word": "Book", "start": 0.5, "end": 0.8}]},
            {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "book", "arguments": arguments},
            {"role": "tool_call_result", "tool_call_id": "t1", "content": '{"ok": true}', "successful": True},
            {"role": "injected", "content": "VIP caller", "time_sec": 1.2},
            {"role": "agent", "content": "Done.", "words": [{"word": "Done.", "start": 1.5, "end": 1.9}]},
        ],
    }
    ongoing = {**calls.basic, "call_id": "call_live", "call_status": "ongoing", "data_storage_setting": "everything"}
    for key in ("end_timestamp", "duration_ms", "disconnection_reason", "latency", "call_analysis"):
        ongoing.pop(key, None)
    file_auth: dict[str, str | None] = {}
    list_bodies: list[dict[str, Any]] = []

    def list_calls(route: Route) -> None:
        body = route.request.post_data_json
        list_bodies.append(body)
        page_two = body.get("pagination_key") == "next"
        items = [ongoing] if page_two else [stub]
        route.fulfill(json={"items": items, "has_more": not page_two, "pagination_key": None if page_two else "next"})

    def call_file(route: Route) -> None:
        file_auth[route.request.url.split("?")[0].rsplit("/", 1)[1]] = route.request.headers.get("authorization")
        if "recording" in route.request.url:
            route.fulfill(body=_wav(), content_type="audio/wav")
        else:
            route.fulfill(body="stub log <script>", content_type="text/plain")

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.route("**/v3/list-calls", list_calls)
        page.route("**/v2/get-call/call_stub", lambda route: route.fulfill(json=stub))
        page.route("**/v2/get-call/call_live", lambda route: route.fulfill(json=ongoing))
        page.route("**/v2/call-files/call_stub/*", call_file)
        _sign_in(page, server)
        assert _row_ids(page) == ["call_stub"]
        page.click("#more")
        page.wait_for_selector("#calls-body tr[data-call-id=call_live]")
        assert page.locator("#more").is_hidden()
        assert list_bodies[-1]["pagination_key"] == "next" and "pagination_key" not in list_bodies[0]

        _open_call(page, "call_live")
        for part in ("recording", "transcript-card", "public-log"):
            assert "not available yet" in page.inner_text(f"section.{part}"), part

        page.goto(f"{base}/console/#/calls/call_stub")
        page.wait_for_selector("body[data-view=call][data-ready=true]")
        page.wait_for_selector("#waveform[data-drawn=true]")
        assert file_auth == {"recording.wav": None, "public_log.txt": f"Bearer {server.api_key}"}
        assert page.inner_text("#public-log") == "stub log <script>"
        items = page.locator("#transcript > .item")
        assert items.count() == 5
        tool_call = page.locator("details.tool-call")
        assert "book" in tool_call.locator("summary").inner_text()
        assert not tool_call.locator("pre").is_visible()
        tool_call.locator("summary").click()
        assert '"day": "<b>Tue</b>"' in tool_call.locator("pre").inner_text()  # as text, not markup
        assert page.locator("details.tool-result").count() == 1
        assert "VIP caller" in page.locator("details.injected pre").text_content()
        page.locator(".word", has_text="Done.").click()
        assert abs(page.evaluate("document.getElementById('recording').currentTime") - 1.5) <= 0.05
        screenshot(page, "console-call-tool-calls")

        # A stored key the server refuses (revoked meanwhile) signs the tab out.
        page.evaluate("sessionStorage.setItem('voxline.apiKey', 'key_revoked')")
        page.goto(f"{base}/console/#/calls")
        page.wait_for_selector("#sign-in-error:has-text('refused')")
        assert page.evaluate("sessionStorage.getItem('voxline.apiKey')") is None
