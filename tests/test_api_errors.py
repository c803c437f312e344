"""Errors in Retell's shape, with the right status, through the real server and in-process."""

import httpx
import pytest

from tests.conftest import custom_llm_agent
from tests.servers import ServerProcess
from voxline.api.app import create_app
from voxline.calls.service import CallService
from voxline.settings import Settings

pytestmark = pytest.mark.slow


def test_missing_and_wrong_api_keys_are_401(server: ServerProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer key_0000"}, {"Authorization": "Basic abc"}):
        response = httpx.get(server.base_url + "/list-voices", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"status": "error", "message": "API key is missing or invalid."}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"voice_id": "piper-joe"}, "response_engine"),
        ({"voice_id": "piper-joe", "response_engine": {"type": "custom-llm"}}, "llm_websocket_url"),
        ({"voice_id": "piper-joe", "response_engine": {"type": "nope"}}, "response_engine"),
        (
            {
                "voice_id": "piper-joe",
                "responsiveness": 2,
                "response_engine": {"type": "custom-llm", "llm_websocket_url": "ws://x/y"},
            },
            "responsiveness",
        ),
        (
            {
                "voice_id": "piper-joe",
                "language": "xx-XX",
                "response_engine": {"type": "custom-llm", "llm_websocket_url": "ws://x/y"},
            },
            "language",
        ),
        (
            {"voice_id": "piper-joe", "response_engine": {"type": "custom-llm", "llm_websocket_url": "http://x/y"}},
            "llm_websocket_url",
        ),
        (
            {"voice_id": "piper-joe", "response_engine": {"type": "retell-llm", "llm_id": "llm_missing"}},
            "llm_id",
        ),
    ],
)
def test_bad_agent_is_400_naming_the_field(api: httpx.Client, body: dict[str, object], field: str) -> None:
    response = api.post("/create-agent", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error"
    assert field in response.json()["message"]


def test_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post("/create-agent", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["status"] == "error"


def test_dynamic_variables_must_be_strings(api: httpx.Client) -> None:
    agent = custom_llm_agent(api)
    response = api.post(
        "/v3/create-web-call", json={"agent_id": agent["agent_id"], "retell_llm_dynamic_variables": {"n": 5}}
    )
    assert response.status_code == 400
    assert "retell_llm_dynamic_variables.n" in response.json()["message"]


@pytest.mark.parametrize(
    "path",
    ["/v2/get-call/call_nope", "/get-agent/agent_nope", "/get-retell-llm/llm_nope", "/get-voice/11labs-Adrian"],
)
def test_unknown_ids_are_404(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["status"] == "error"


def test_create_web_call_for_unknown_agent_is_404(api: httpx.Client) -> None:
    response = api.post("/v3/create-web-call", json={"agent_id": "agent_nope"})
    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "agent agent_nope not found"}


def test_unknown_route_is_404_in_error_shape(api: httpx.Client) -> None:
    response = api.get("/no-such-endpoint")
    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "The requested resource was not found."}


async def test_unexpected_failure_is_500_that_sdks_do_not_retry(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A create that fails inside the server must say `x-should-retry: false` (it may have been written)."""

    async def broken(self: CallService, request: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(CallService, "create_web_call", broken)
    app = create_app(Settings(data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        key = (await app.state.services.keys.create("t")).raw_key
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                "/v3/create-web-call", json={"agent_id": "agent_x"}, headers={"Authorization": f"Bearer {key}"}
            )
    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    assert response.json() == {"status": "error", "message": "An unexpected server error occurred."}
