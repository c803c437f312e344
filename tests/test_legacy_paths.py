"""Legacy paths that no current SDK calls but older SDKs and web client 1.x apps still do.

Spec A.1-A.3, B.7, F.4, I.5: `GET /list-agents`, `GET /list-retell-llms`, `POST /v2/list-calls`
and `GET /get-agent-versions/{id}` answer bare JSON arrays; `POST /register-call` is the v1
call registration; `POST /publish-agent/{id}` publishes the latest version. Shapes are checked
against the SDK's own response models (pydantic validation, as strict response validation does).
"""

import time
import uuid
from typing import Any

import httpx
import pytest
from retell.types import AgentResponse, LlmResponse, WebCallResponse

from tests.conftest import custom_llm_agent
from tests.servers import ServerProcess

Json = dict[str, Any]


def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()


def _bare_array(response: httpx.Response) -> list[Json]:
    body = _json(response)
    assert isinstance(body, list), f"expected a bare JSON array, got {type(body).__name__}: {body!r:.200}"
    return body


def _error(response: httpx.Response, status: int) -> str:
    body = _json(response, status)
    assert set(body) == {"status", "message"}, body
    assert body["status"] == "error"
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


def _web_call(api: httpx.Client, agent_id: str, **fields: Any) -> str:
    response = api.post("/v3/create-web-call", json={"agent_id": agent_id, **fields})
    assert response.status_code == 201, response.text
    time.sleep(0.005)  # distinct creation times, so the order of calls is unambiguous
    return str(response.json()["call_id"])


def _list_calls(api: httpx.Client, **body: Any) -> list[Json]:
    items = _bare_array(api.post("/v2/list-calls", json=body))
    for item in items:
        WebCallResponse.model_validate(item)
    return items


def _ids(items: list[Json]) -> list[str]:
    return [str(item["call_id"]) for item in items]


@pytest.fixture
def agent_with_calls(api: httpx.Client) -> tuple[str, list[str]]:
    """A fresh agent with three registered web calls (oldest first); the middle one is stopped."""
    agent_id = str(custom_llm_agent(api, agent_name=f"legacy-{uuid.uuid4().hex[:6]}")["agent_id"])
    calls = [
        _web_call(api, agent_id, metadata={"tier": "gold", "n": 0}, retell_llm_dynamic_variables={"who": "a"}),
        _web_call(api, agent_id, metadata={"tier": "silver", "n": 1}),
        _web_call(api, agent_id, metadata={"tier": "gold", "n": 2}, retell_llm_dynamic_variables={"who": "c"}),
    ]
    assert api.post(f"/v2/stop-call/{calls[1]}").status_code == 204
    return agent_id, calls


# --- GET /list-agents ------------------------------------------------------------------------------


def test_legacy_list_agents_returns_bare_array_of_full_agent_objects(api: httpx.Client) -> None:
    first = custom_llm_agent(api, agent_name="legacy-list-a")
    time.sleep(0.005)
    second = custom_llm_agent(api, agent_name="legacy-list-b")
    api.patch(f"/update-agent/{first['agent_id']}", json={"agent_name": "legacy-list-a2"}).raise_for_status()

    agents = _bare_array(api.get("/list-agents"))
    by_id = {a["agent_id"]: a for a in agents}
    assert len(by_id) == len(agents), "each agent is listed once (its latest version)"
    for agent in agents:
        AgentResponse.model_validate(agent)
    assert by_id[first["agent_id"]]["agent_name"] == "legacy-list-a2"
    assert by_id[second["agent_id"]]["response_engine"] == second["response_engine"]
    assert by_id[second["agent_id"]]["voice_id"] == "piper-joe"
    order = [a["agent_id"] for a in agents]
    assert order.index(second["agent_id"]) < order.index(first["agent_id"]), "newest first by default"


def test_legacy_list_agents_honours_limit_and_sort_order(api: httpx.Client) -> None:
    for i in range(3):
        custom_llm_agent(api, agent_name=f"legacy-limit-{i}")
    everything = [a["agent_id"] for a in _bare_array(api.get("/list-agents"))]
    assert len(everything) >= 3
    limited = _bare_array(api.get("/list-agents", params={"limit": 2}))
    assert [a["agent_id"] for a in limited] == everything[:2]
    ascending = [a["agent_id"] for a in _bare_array(api.get("/list-agents", params={"sort_order": "ascending"}))]
    assert ascending == list(reversed(everything))


def test_legacy_list_agents_pages_with_last_agent_id_as_pagination_key(api: httpx.Client) -> None:
    """Legacy SDKs page /list-agents with `pagination_key` = the last agent id (+ its version)."""
    for i in range(3):
        custom_llm_agent(api, agent_name=f"legacy-page-{i}")
    everything = [a["agent_id"] for a in _bare_array(api.get("/list-agents"))]
    first_page = _bare_array(api.get("/list-agents", params={"limit": 2}))
    last = first_page[-1]
    response = api.get(
        "/list-agents",
        params={"limit": 2, "pagination_key": last["agent_id"], "pagination_key_version": last["version"]},
    )
    assert [a["agent_id"] for a in _bare_array(response)] == everything[2:4]


def test_legacy_list_agents_rejects_bad_query_with_400(api: httpx.Client) -> None:
    assert "limit" in _error(api.get("/list-agents", params={"limit": 0}), 400)
    assert "sort_order" in _error(api.get("/list-agents", params={"sort_order": "sideways"}), 400)


# --- GET /list-retell-llms -------------------------------------------------------------------------


def _create_llm(api: httpx.Client, prompt: str) -> Json:
    return _json(api.post("/create-retell-llm", json={"general_prompt": prompt, "model": "gpt-4.1"}), 201)  # type: ignore[no-any-return]


def test_legacy_list_retell_llms_returns_bare_array_of_full_llm_objects(api: httpx.Client) -> None:
    older = _create_llm(api, "legacy llm one")
    time.sleep(0.005)
    newer = _create_llm(api, "legacy llm two")
    llms = _bare_array(api.get("/list-retell-llms"))
    for llm in llms:
        LlmResponse.model_validate(llm)
    by_id = {llm["llm_id"]: llm for llm in llms}
    assert by_id[older["llm_id"]]["general_prompt"] == "legacy llm one"
    assert by_id[newer["llm_id"]]["model"] == "gpt-4.1"
    order = [llm["llm_id"] for llm in llms]
    assert order.index(newer["llm_id"]) < order.index(older["llm_id"]), "newest first by default"
    assert len(_bare_array(api.get("/list-retell-llms", params={"limit": 1}))) == 1


def test_legacy_list_retell_llms_pages_with_last_llm_id_as_pagination_key(api: httpx.Client) -> None:
    """Legacy SDKs page /list-retell-llms with `pagination_key` = the last llm id (+ its version)."""
    for i in range(3):
        _create_llm(api, f"legacy page {i}")
    everything = [llm["llm_id"] for llm in _bare_array(api.get("/list-retell-llms"))]
    first_page = _bare_array(api.get("/list-retell-llms", params={"limit": 2}))
    last = first_page[-1]
    response = api.get(
        "/list-retell-llms",
        params={"limit": 2, "pagination_key": last["llm_id"], "pagination_key_version": last["version"]},
    )
    assert [llm["llm_id"] for llm in _bare_array(response)] == everything[2:4]


# --- POST /v2/list-calls ---------------------------------------------------------------------------


def test_legacy_list_calls_returns_bare_array_filtered_by_agent(
    api: httpx.Client, agent_with_calls: tuple[str, list[str]]
) -> None:
    agent_id, calls = agent_with_calls
    items = _list_calls(api, filter_criteria={"agent_id": [agent_id]})
    assert _ids(items) == list(reversed(calls)), "newest first by default"
    for item in items:
        assert item["call_type"] == "web_call" and item["agent_id"] == agent_id
        assert item["agent_version"] == 0 and isinstance(item["access_token"], str)
    assert items[0]["metadata"] == {"tier": "gold", "n": 2}
    assert items[0]["retell_llm_dynamic_variables"] == {"who": "c"}
    assert _list_calls(api, filter_criteria={"agent_id": [f"agent_none{uuid.uuid4().hex[:8]}"]}) == []


def test_legacy_list_calls_without_body_lists_calls(api: httpx.Client, agent_with_calls: tuple[str, list[str]]) -> None:
    _, calls = agent_with_calls
    items = _bare_array(api.post("/v2/list-calls"))
    assert _ids(items)[:3] == list(reversed(calls)), "the newest calls come first"
    assert len(items) <= 50, "default limit is 50"


def test_legacy_list_calls_filters_by_call_id_version_type_and_disconnection_reason(
    api: httpx.Client, agent_with_calls: tuple[str, list[str]]
) -> None:
    agent_id, calls = agent_with_calls
    by_id = _list_calls(api, filter_criteria={"call_id": [calls[0], calls[2]]})
    assert _ids(by_id) == [calls[2], calls[0]]
    mine = {"agent_id": [agent_id]}
    assert len(_list_calls(api, filter_criteria={**mine, "version": [0]})) == 3
    assert _list_calls(api, filter_criteria={**mine, "version": [1]}) == []
    assert len(_list_calls(api, filter_criteria={**mine, "call_type": ["web_call"]})) == 3
    assert _list_calls(api, filter_criteria={**mine, "call_type": ["phone_call"]}) == []
    stopped = _list_calls(api, filter_criteria={**mine, "disconnection_reason": ["manual_stopped"]})
    assert _ids(stopped) == [calls[1]]


def test_legacy_list_calls_filters_by_call_status(api: httpx.Client, agent_with_calls: tuple[str, list[str]]) -> None:
    agent_id, calls = agent_with_calls
    registered = _list_calls(api, filter_criteria={"agent_id": [agent_id], "call_status": ["registered"]})
    assert _ids(registered) == [calls[2], calls[0]]
    assert all(item["call_status"] == "registered" for item in registered)
    ended = _list_calls(api, filter_criteria={"agent_id": [agent_id], "call_status": ["ended"]})
    assert _ids(ended) == [calls[1]]
    assert ended[0]["disconnection_reason"] == "manual_stopped"
    both = _list_calls(api, filter_criteria={"agent_id": [agent_id], "call_status": ["registered", "ended"]})
    assert len(both) == 3


def test_legacy_list_calls_filters_by_metadata_values(
    api: httpx.Client, agent_with_calls: tuple[str, list[str]]
) -> None:
    agent_id, calls = agent_with_calls
    gold = _list_calls(api, filter_criteria={"agent_id": [agent_id], "metadata": {"tier": ["gold"]}})
    assert _ids(gold) == [calls[2], calls[0]]
    either = _list_calls(api, filter_criteria={"agent_id": [agent_id], "metadata": {"tier": ["gold", "silver"]}})
    assert len(either) == 3
    none = _list_calls(api, filter_criteria={"agent_id": [agent_id], "metadata": {"tier": ["bronze"]}})
    assert none == []
    by_dyn = _list_calls(api, filter_criteria={"agent_id": [agent_id], "dynamic_variables": {"who": ["a"]}})
    assert _ids(by_dyn) == [calls[0]]


def test_legacy_list_calls_filters_by_timestamp_and_duration_thresholds(
    api: httpx.Client, agent_with_calls: tuple[str, list[str]]
) -> None:
    agent_id, calls = agent_with_calls
    stopped = _json(api.get(f"/v2/get-call/{calls[1]}"))
    end = stopped["end_timestamp"]
    assert isinstance(end, int) and stopped["duration_ms"] == 0

    window = {"lower_threshold": end - 1, "upper_threshold": end + 1}
    assert _ids(_list_calls(api, filter_criteria={"agent_id": [agent_id], "end_timestamp": window})) == [calls[1]]
    later = {"lower_threshold": end + 1}
    assert _list_calls(api, filter_criteria={"agent_id": [agent_id], "end_timestamp": later}) == []
    short = {"upper_threshold": 0}
    assert _ids(_list_calls(api, filter_criteria={"agent_id": [agent_id], "duration_ms": short})) == [calls[1]]
    long = {"lower_threshold": 1}
    assert _list_calls(api, filter_criteria={"agent_id": [agent_id], "duration_ms": long}) == []

    bounds = {"lower_threshold": 0, "upper_threshold": end + 60_000}
    started = _list_calls(api, filter_criteria={"agent_id": [agent_id], "start_timestamp": bounds})
    for item in started:
        assert 0 <= item["start_timestamp"] <= end + 60_000, item


def test_legacy_list_calls_pages_with_last_call_id_exclusive(
    api: httpx.Client, agent_with_calls: tuple[str, list[str]]
) -> None:
    agent_id, calls = agent_with_calls
    criteria = {"agent_id": [agent_id]}
    first = _list_calls(api, filter_criteria=criteria, limit=2)
    assert _ids(first) == [calls[2], calls[1]]
    rest = _list_calls(api, filter_criteria=criteria, limit=2, pagination_key=calls[1])
    assert _ids(rest) == [calls[0]]
    assert _list_calls(api, filter_criteria=criteria, pagination_key=calls[0]) == []


def test_legacy_list_calls_sorts_ascending_and_pages_forward(
    api: httpx.Client, agent_with_calls: tuple[str, list[str]]
) -> None:
    agent_id, calls = agent_with_calls
    criteria = {"agent_id": [agent_id]}
    assert _ids(_list_calls(api, filter_criteria=criteria, sort_order="ascending")) == calls
    first = _list_calls(api, filter_criteria=criteria, sort_order="ascending", limit=1)
    assert _ids(first) == calls[:1]
    rest = _list_calls(api, filter_criteria=criteria, sort_order="ascending", pagination_key=calls[0])
    assert _ids(rest) == calls[1:]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"sort_order": "sideways"}, "sort_order"),
        ({"filter_criteria": {"call_status": ["bogus"]}}, "call_status"),
        ({"filter_criteria": {"agent_id": "not-a-list"}}, "agent_id"),
        ({"filter_criteria": {"metadata": {"tier": "gold"}}}, "metadata"),
        ({"filter_criteria": {"duration_ms": {"lower_threshold": "long"}}}, "duration_ms"),
    ],
)
def test_legacy_list_calls_rejects_bad_body_with_400_naming_the_field(
    api: httpx.Client, body: Json, field: str
) -> None:
    assert field in _error(api.post("/v2/list-calls", json=body), 400)


def test_legacy_list_calls_rejects_unknown_pagination_key_with_400(api: httpx.Client) -> None:
    message = _error(api.post("/v2/list-calls", json={"pagination_key": f"call_missing{uuid.uuid4().hex[:8]}"}), 400)
    assert "pagination_key" in message


def test_legacy_list_calls_requires_api_key(server: ServerProcess) -> None:
    _error(httpx.post(server.base_url + "/v2/list-calls", json={}), 401)
    _error(httpx.get(server.base_url + "/list-agents", headers={"Authorization": "Bearer key_wrong"}), 401)


# --- POST /register-call (v1) ----------------------------------------------------------------------


def test_register_call_v1_returns_registered_call_and_get_call_shows_it(api: httpx.Client) -> None:
    agent = custom_llm_agent(api, agent_name="legacy-v1")
    body = {
        "agent_id": agent["agent_id"],
        "audio_websocket_protocol": "web",
        "audio_encoding": "s16le",
        "sample_rate": 24000,
        "metadata": {"source": "web-client-1.x"},
        "retell_llm_dynamic_variables": {"customer_name": "Ada"},
    }
    before = int(time.time() * 1000) - 60_000
    registered = _json(api.post("/register-call", json=body), 201)
    assert registered["call_id"].startswith("call_")
    assert registered["agent_id"] == agent["agent_id"]
    assert registered["audio_encoding"] == "s16le"
    assert registered["audio_websocket_protocol"] == "web"
    assert registered["sample_rate"] == 24000
    assert registered["call_status"] == "registered"
    assert isinstance(registered["start_timestamp"], int) and registered["start_timestamp"] >= before
    assert registered["metadata"] == {"source": "web-client-1.x"}
    assert registered["retell_llm_dynamic_variables"] == {"customer_name": "Ada"}

    call = _json(api.get(f"/v2/get-call/{registered['call_id']}"))
    WebCallResponse.model_validate(call)
    assert call["call_type"] == "web_call"
    assert call["call_status"] == "registered"
    assert call["agent_id"] == agent["agent_id"] and call["agent_version"] == 0
    assert call["metadata"] == {"source": "web-client-1.x"}
    assert call["retell_llm_dynamic_variables"] == {"customer_name": "Ada"}
    listed = _list_calls(api, filter_criteria={"agent_id": [agent["agent_id"]]})
    assert _ids(listed) == [registered["call_id"]]


def test_register_call_v1_accepts_mulaw_and_silence_timeout(api: httpx.Client) -> None:
    agent = custom_llm_agent(api)
    registered = _json(
        api.post(
            "/register-call",
            json={
                "agent_id": agent["agent_id"],
                "audio_websocket_protocol": "web",
                "audio_encoding": "mulaw",
                "sample_rate": 8000,
                "end_call_after_silence_ms": 20000,
            },
        ),
        201,
    )
    assert registered["audio_encoding"] == "mulaw" and registered["sample_rate"] == 8000
    assert registered["end_call_after_silence_ms"] == 20000
    assert "metadata" not in registered or registered["metadata"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sample_rate": None}, "sample_rate"),
        ({"sample_rate": "fast"}, "sample_rate"),
        ({"audio_encoding": "flac"}, "audio_encoding"),
        ({"audio_websocket_protocol": "carrier-pigeon"}, "audio_websocket_protocol"),
        ({"retell_llm_dynamic_variables": {"n": 5}}, "retell_llm_dynamic_variables"),
        ({"metadata": "not an object"}, "metadata"),
        ({"agent_id": ""}, "agent_id"),
    ],
)
def test_register_call_v1_rejects_bad_body_with_400_naming_the_field(
    api: httpx.Client, change: Json, field: str
) -> None:
    body: Json = {"agent_id": "agent_x", "audio_websocket_protocol": "web", "audio_encoding": "s16le"}
    body["sample_rate"] = 24000
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    assert field in _error(api.post("/register-call", json=body), 400)


def test_register_call_v1_for_unknown_agent_is_404(api: httpx.Client) -> None:
    body = {"agent_id": f"agent_missing{uuid.uuid4().hex[:8]}", "audio_websocket_protocol": "web"}
    _error(api.post("/register-call", json={**body, "audio_encoding": "s16le", "sample_rate": 24000}), 404)


def test_register_call_v1_rejects_non_json_body_with_400(api: httpx.Client) -> None:
    response = api.post("/register-call", content=b"agent_id=x", headers={"Content-Type": "text/plain"})
    _error(response, 400)


# --- GET /get-agent-versions/{id} and POST /publish-agent/{id} -----------------------------------------


def test_legacy_get_agent_versions_returns_bare_array_of_every_version(api: httpx.Client) -> None:
    agent = custom_llm_agent(api, agent_name="legacy-versions")
    agent_id = agent["agent_id"]
    versions = _bare_array(api.get(f"/get-agent-versions/{agent_id}"))
    assert [v["version"] for v in versions] == [0]
    AgentResponse.model_validate(versions[0])
    assert versions[0]["agent_name"] == "legacy-versions"

    created = _json(api.post(f"/create-agent-version/{agent_id}", json={"base_version": 0}), 201)
    assert created["version"] == 1
    versions = _bare_array(api.get(f"/get-agent-versions/{agent_id}"))
    for version in versions:
        AgentResponse.model_validate(version)
        assert version["agent_id"] == agent_id
    assert [v["version"] for v in versions] == [0, 1]


def test_legacy_publish_agent_publishes_latest_and_next_update_makes_a_draft(api: httpx.Client) -> None:
    agent = custom_llm_agent(api, agent_name="legacy-publish")
    agent_id = agent["agent_id"]
    response = api.post(f"/publish-agent/{agent_id}")
    assert 200 <= response.status_code < 300, response.text
    if response.status_code != 204:
        published = _json(response, response.status_code)
        AgentResponse.model_validate(published)
        assert published["agent_id"] == agent_id and published["version"] == 0
        assert published["is_published"] is True

    versions = _bare_array(api.get(f"/get-agent-versions/{agent_id}"))
    assert [(v["version"], v["is_published"]) for v in versions] == [(0, True)]

    draft = _json(api.patch(f"/update-agent/{agent_id}", json={"agent_name": "legacy-publish-2"}))
    assert draft["version"] == 1 and draft["is_published"] is False
    assert _json(api.get(f"/get-agent/{agent_id}", params={"version": 0}))["agent_name"] == "legacy-publish"

    assert 200 <= api.post(f"/publish-agent/{agent_id}").status_code < 300
    versions = _bare_array(api.get(f"/get-agent-versions/{agent_id}"))
    assert [(v["version"], v["is_published"]) for v in versions] == [(0, True), (1, True)]
    listed = _json(api.get(f"/list-agent-versions/{agent_id}", params={"sort_order": "ascending"}))
    assert [(v["version"], v["is_published"]) for v in listed["items"]] == [(0, True), (1, True)]


def test_legacy_agent_version_paths_answer_404_for_unknown_agent(api: httpx.Client) -> None:
    missing = f"agent_missing{uuid.uuid4().hex[:8]}"
    _error(api.get(f"/get-agent-versions/{missing}"), 404)
    _error(api.post(f"/publish-agent/{missing}"), 404)
