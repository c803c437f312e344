"""The call lifecycle through a real server: timeouts, restarts, stop, delete, and key revocation."""

import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import BACKENDS, custom_llm_agent
from tests.servers import ServerProcess
from voxline.store.files import LocalFiles

pytestmark = pytest.mark.slow
FAST_TIMEOUT = {"VOXLINE_REGISTERED_CALL_TIMEOUT_MS": "1500", "VOXLINE_SWEEP_INTERVAL_MS": "100"}


def wait_for_status(api: httpx.Client, call_id: str, status: str, timeout: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    call: dict[str, object] = {}
    while time.monotonic() < deadline:
        call = api.get(f"/v2/get-call/{call_id}").json()
        if call["call_status"] == status:
            return call
        time.sleep(0.1)
    raise AssertionError(f"call {call_id} stayed {call.get('call_status')!r}, expected {status!r}: {call}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_unjoined_web_call_ends_as_error_user_not_joined(
    make_server: Callable[..., ServerProcess], backend: str
) -> None:
    server = make_server(backend, **FAST_TIMEOUT).start()
    with server.client() as api:
        agent = custom_llm_agent(api)
        created = api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"]}).json()
        assert created["call_status"] == "registered"
        assert created["expires_at"] - int(time.time() * 1000) <= 1500
        ended = wait_for_status(api, created["call_id"], "error")
    assert ended["disconnection_reason"] == "error_user_not_joined"
    assert ended["duration_ms"] == 0
    assert ended["end_timestamp"] == created["expires_at"]
    assert "start_timestamp" not in ended


@pytest.mark.parametrize("backend", BACKENDS)
def test_unjoined_call_still_ends_after_server_restart(make_server: Callable[..., ServerProcess], backend: str) -> None:
    server = make_server(backend, **FAST_TIMEOUT).start()
    with server.client() as api:
        agent = custom_llm_agent(api)
        call_id = api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"]}).json()["call_id"]
    server.stop()
    time.sleep(2.0)  # the deadline passes while no server runs
    server.start()
    with server.client() as api:
        ended = wait_for_status(api, call_id, "error")
    assert ended["disconnection_reason"] == "error_user_not_joined"
    assert ended["duration_ms"] == 0


def test_stopped_registered_call_ends_as_manual_stopped(api: httpx.Client) -> None:
    agent = custom_llm_agent(api)
    call_id = api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"]}).json()["call_id"]
    assert api.post(f"/v2/stop-call/{call_id}").status_code == 204
    call = api.get(f"/v2/get-call/{call_id}").json()
    assert (call["call_status"], call["disconnection_reason"], call["duration_ms"]) == ("ended", "manual_stopped", 0)
    again = api.post(f"/v2/stop-call/{call_id}")
    assert again.status_code == 400
    assert again.json() == {"status": "error", "message": f"call {call_id} has already ended (ended)"}


def test_deleted_call_is_gone_with_its_files(server: ServerProcess, api: httpx.Client) -> None:
    agent = custom_llm_agent(api)
    call_id = api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"]}).json()["call_id"]
    files = LocalFiles(server.data_dir / "calls")
    files.put(call_id, "recording.wav", b"RIFF....WAVEfmt ")
    files.put(call_id, "public_log.txt", b"log")
    assert files.list(call_id) == ["public_log.txt", "recording.wav"]

    assert api.delete(f"/v2/delete-call/{call_id}").status_code == 204
    assert api.get(f"/v2/get-call/{call_id}").status_code == 404
    assert not files.call_dir(call_id).exists()
    listed = api.post("/v3/list-calls", json={"filter_criteria": {"agent": [{"agent_id": agent["agent_id"]}]}}).json()
    assert listed["items"] == []
    assert api.delete(f"/v2/delete-call/{call_id}").status_code == 404


def test_revoked_key_is_refused_at_once(server: ServerProcess) -> None:
    created = server.cli("keys", "create", "--name", "ci-robot")
    assert created.returncode == 0, created.stderr
    raw_key = created.stdout.strip().splitlines()[-1]
    assert raw_key.startswith("key_")
    listing = server.cli("keys", "list").stdout
    key_line = next(line for line in listing.splitlines() if "ci-robot" in line)
    assert raw_key not in listing and raw_key[:12] in key_line
    key_id = key_line.split()[0]

    headers = {"Authorization": f"Bearer {raw_key}"}
    assert httpx.get(server.base_url + "/list-voices", headers=headers).status_code == 200
    revoked = server.cli("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    refused = httpx.get(server.base_url + "/list-voices", headers=headers)
    assert refused.status_code == 401
    assert refused.json() == {"status": "error", "message": "API key is missing or invalid."}
    assert "revoked" in next(line for line in server.cli("keys", "list").stdout.splitlines() if key_id in line)
    assert server.cli("keys", "revoke", key_id).returncode == 1


def test_access_token_is_bound_to_its_call_and_is_no_api_key(server: ServerProcess, api: httpx.Client) -> None:
    agent = custom_llm_agent(api)
    first = api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"]}).json()
    second = api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"]}).json()
    assert first["access_token"] != second["access_token"]
    assert api.get(f"/v2/get-call/{first['call_id']}").json()["access_token"] == first["access_token"]
    as_key = httpx.get(
        server.base_url + f"/v2/get-call/{first['call_id']}",
        headers={"Authorization": f"Bearer {first['access_token']}"},
    )
    assert as_key.status_code == 401


def test_first_start_prints_one_key_and_later_starts_none(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server("sqlite").start()
    assert server.api_key is not None
    assert sum("key_" in line for line in server.output) == 1
    first_key = server.api_key
    server.stop()
    server.api_key = None
    server.output.clear()
    server.start()
    assert server.api_key is None
    assert not any("key_" in line for line in server.output)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {first_key}"}) as api:
        assert api.get("/list-voices").status_code == 200


def test_the_first_key_is_the_webhook_key_derived_from_the_secret(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server("sqlite").start()
    shown = server.cli("keys", "webhook")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == server.api_key  # shown again on demand, never stored plain
    assert "webhook" in server.cli("keys", "list").stdout
    secret = (server.data_dir / "secret.key").read_text().strip()
    assert server.api_key is not None and secret not in server.api_key
    assert not any(server.api_key in p.read_text(errors="ignore") for p in server.data_dir.rglob("*") if p.is_file())


async def test_first_start_creates_a_demo_agent_on_the_mounted_example_llm(
    make_server: Callable[..., ServerProcess],
) -> None:
    from voxline.llm.custom_llm import CustomLlmClient
    from voxline.llm.interfaces import ResponseChunk

    server = make_server("sqlite").start()
    with server.client() as api:
        agents = api.get("/list-agents").json()
    assert [a["agent_name"] for a in agents] == ["Demo receptionist (example LLM)"]
    url = agents[0]["response_engine"]["llm_websocket_url"]
    assert url == f"ws://127.0.0.1:{server.port}/examples/receptionist/llm-websocket"

    client = CustomLlmClient(url, "call_demo", open_attempts=1, open_retry_delay=0)
    await client.start({"call_id": "call_demo", "call_type": "web_call", "call_status": "ongoing"})
    try:
        greeting = ""
        async for event in client.events():
            assert isinstance(event, ResponseChunk), event
            assert event.response_id == 0
            greeting += event.content
            if event.content_complete:
                break
    finally:
        await client.close()
    assert "Bright Smile Dental" in greeting
