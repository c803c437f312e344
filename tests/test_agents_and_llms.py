"""Agents and Retell LLMs: versions, publishing, overrides and the LLM-in-use rule."""

import httpx
import pytest

from tests.conftest import custom_llm_agent

pytestmark = pytest.mark.slow


def test_agent_versions_start_at_zero_and_publishing_freezes_a_version(api: httpx.Client) -> None:
    agent = custom_llm_agent(api, agent_name="v0")
    agent_id = agent["agent_id"]
    assert (agent["version"], agent["is_published"]) == (0, False)

    assert api.patch(f"/update-agent/{agent_id}", json={"agent_name": "v0 edited"}).json()["version"] == 0
    assert (
        api.post(f"/publish-agent-version/{agent_id}", json={"version": 0, "version_title": "first"}).status_code == 204
    )

    refused = api.patch(f"/update-agent/{agent_id}?version=0", json={"agent_name": "no"})
    assert refused.status_code == 400 and "published" in refused.json()["message"]

    draft = api.patch(f"/update-agent/{agent_id}", json={"agent_name": "v1"}).json()
    assert (draft["version"], draft["base_version"], draft["is_published"]) == (1, 0, False)
    assert api.get(f"/get-agent/{agent_id}?version=0").json()["agent_name"] == "v0 edited"
    assert api.get(f"/get-agent/{agent_id}").json()["agent_name"] == "v1"

    versions = api.get(f"/list-agent-versions/{agent_id}").json()
    assert [(v["version"], v["is_published"]) for v in versions["items"]] == [(1, False), (0, True)]
    assert versions["items"][1]["version_title"] == "first"


def test_update_clears_nullable_fields_and_refuses_null_required_ones(api: httpx.Client) -> None:
    agent = custom_llm_agent(api, agent_name="named", boosted_keywords=["Voxline"])
    updated = api.patch(f"/update-agent/{agent['agent_id']}", json={"boosted_keywords": None}).json()
    assert "boosted_keywords" not in updated and updated["agent_name"] == "named"
    refused = api.patch(f"/update-agent/{agent['agent_id']}", json={"voice_id": None})
    assert refused.status_code == 400 and "voice_id" in refused.json()["message"]


def test_legacy_storage_flag_maps_to_basic_attributes_only(api: httpx.Client) -> None:
    agent = custom_llm_agent(api, opt_out_sensitive_data_storage=True)
    assert agent["data_storage_setting"] == "basic_attributes_only"
    call = api.post("/v2/create-web-call", json={"agent_id": agent["agent_id"]}).json()
    assert call["data_storage_setting"] == "basic_attributes_only"
    explicit = api.post(
        "/v2/create-web-call",
        json={"agent_id": custom_llm_agent(api)["agent_id"], "opt_out_sensitive_data_storage": True},
    ).json()
    assert explicit["data_storage_setting"] == "basic_attributes_only"


def test_web_call_honours_agent_version_and_override(api: httpx.Client) -> None:
    agent = custom_llm_agent(api, agent_name="published one")
    agent_id = agent["agent_id"]
    api.post(f"/publish-agent-version/{agent_id}", json={"version": 0})
    api.patch(f"/update-agent/{agent_id}", json={"agent_name": "draft one"})

    def create(**fields: object) -> dict[str, object]:
        response = api.post("/v2/create-web-call", json={"agent_id": agent_id, **fields})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    assert (create()["agent_version"], create()["agent_name"]) == (1, "draft one")
    assert (create(agent_version="latest_published")["agent_version"]) == 0
    assert create(agent_version=0)["agent_name"] == "published one"
    overridden = create(
        agent_override={"agent": {"agent_name": "per call", "data_storage_setting": "everything_except_pii"}}
    )
    assert (overridden["agent_name"], overridden["data_storage_setting"]) == ("per call", "everything_except_pii")
    assert api.get(f"/get-agent/{agent_id}").json()["agent_name"] == "draft one"
    missing = api.post("/v2/create-web-call", json={"agent_id": agent_id, "agent_version": 7})
    assert missing.status_code == 400 and "agent_version" in missing.json()["message"]


def test_llm_in_use_cannot_be_deleted_without_force(api: httpx.Client) -> None:
    llm = api.post(
        "/create-retell-llm", json={"general_prompt": "You are kind.", "begin_message": "Hi {{name}}"}
    ).json()
    assert (llm["version"], llm["start_speaker"]) == (0, "agent")
    agent = api.post(
        "/create-agent",
        json={"voice_id": "piper-joe", "response_engine": {"type": "retell-llm", "llm_id": llm["llm_id"]}},
    ).json()
    refused = api.delete(f"/delete-retell-llm/{llm['llm_id']}")
    assert refused.status_code == 400 and agent["agent_id"] in refused.json()["message"]
    assert api.delete(f"/delete-retell-llm/{llm['llm_id']}?force_delete=true").status_code == 204
    assert api.get(f"/get-retell-llm/{llm['llm_id']}").status_code == 404


def test_llm_states_must_be_consistent(api: httpx.Client) -> None:
    states = [{"name": "intro", "edges": [{"destination_state_name": "nowhere", "description": "go"}]}]
    response = api.post("/create-retell-llm", json={"states": states, "starting_state": "intro"})
    assert response.status_code == 400 and "nowhere" in response.json()["message"]
    response = api.post("/create-retell-llm", json={"states": [{"name": "intro"}]})
    assert response.status_code == 400 and "starting_state" in response.json()["message"]


def test_list_voices_offers_only_installed_voices(api: httpx.Client) -> None:
    voices = api.get("/list-voices").json()
    assert [v["voice_id"] for v in voices] == ["piper-joe"]
    assert api.get("/get-voice/piper-joe").json()["provider"] == "platform"


def test_concurrency_reports_the_configured_limit(api: httpx.Client) -> None:
    body = api.get("/get-concurrency").json()
    assert body["concurrency_limit"] == 8 and body["current_concurrency"] == 0
