"""Drive every control-plane call of the official `retell` Python SDK against a running server.

Run as `python tests/sdk_driver.py` with RETELL_BASE_URL and RETELL_API_KEY set. Whatever
`retell` is first on sys.path is used (PYTHONPATH can put an older SDK in front of the installed
one). The client validates every response strictly, so a missing required field, a wrong type or
an unknown enum value fails the step. One line is printed per step; any failure prints a
traceback and exits non-zero.

SDK differences handled here (spec A.1, B.1-B.2):
- <= 5.64.0: `call.create_web_call` posts to /v2/create-web-call and returns the whole call
  (`WebCallResponse`, call_status "registered").
- >= 5.65.0: it posts to /v3/create-web-call and returns `CreateWebCallResponse`
  (access_token, call_id, expires_at, ice_servers, transport).
- 5.64.0 still has `agent.get_versions` (legacy GET /get-agent-versions/{id}, bare array).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import retell
from retell import APIStatusError, AuthenticationError, BadRequestError, NotFoundError, Retell
from retell.types import (
    AgentListResponse,
    AgentListVersionsResponse,
    AgentResponse,
    CallListResponse,
    ConcurrencyRetrieveResponse,
    LlmListResponse,
    LlmResponse,
    VoiceResponse,
    WebCallResponse,
)

E = TypeVar("E", bound=APIStatusError)

WS_URL = "ws://127.0.0.1:9/llm-websocket"
VOICE_ID = "piper-joe"


def step(name: str) -> None:
    print(f"step: {name}", flush=True)


def sdk_version() -> str:
    """The imported SDK's version, cross-checked with the dist-info next to the imported module."""
    version = str(retell.__version__)
    site = Path(retell.__file__).resolve().parent.parent
    dist_infos = sorted(site.glob("retell_sdk-*.dist-info"))
    if dist_infos:
        dist_version = importlib.metadata.PathDistribution(dist_infos[0]).version
        assert dist_version == version, f"retell.__version__ {version} != dist-info {dist_version}"
    return version


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def expect_error(kind: type[E], call: Callable[[], object], status: int) -> E:
    """Run `call`, which must raise `kind` with HTTP `status` and Retell's error body."""
    try:
        result = call()
    except kind as exc:
        assert exc.status_code == status, f"expected HTTP {status}, got {exc.status_code}"
        body = exc.body
        assert isinstance(body, dict), f"error body is not a JSON object: {body!r}"
        assert set(body) == {"status", "message"}, body
        assert body["status"] == "error", body
        assert isinstance(body["message"], str) and body["message"], body
        return exc
    raise AssertionError(f"expected {kind.__name__}, call returned {result!r}")


def message(exc: APIStatusError) -> str:
    body = exc.body
    assert isinstance(body, dict)
    return str(body["message"])


def all_agent_ids(client: Retell, limit: int) -> Iterator[tuple[list[str], str | None]]:
    """Every page of /v2/list-agents: (agent ids on the page, pagination_key)."""
    key: str | None = None
    for _ in range(10_000):
        page = client.agent.list(limit=limit, **({"pagination_key": key} if key else {}))
        assert isinstance(page, AgentListResponse), type(page)
        items = page.items or []
        assert len(items) <= limit, f"page of {len(items)} items with limit {limit}"
        yield [item.agent_id for item in items], page.pagination_key
        if not page.has_more:
            assert page.pagination_key is None, page.pagination_key
            return
        assert page.pagination_key, "has_more without pagination_key"
        key = page.pagination_key
    raise AssertionError("agent list did not end")


def run(client: Retell, base_url: str, version: str) -> None:
    v3_web_call = version_tuple(version) >= (5, 65)
    tag = uuid.uuid4().hex[:8]
    now_ms = int(time.time() * 1000)

    # --- Retell LLM -----------------------------------------------------------------------------
    step("llm.create")
    llm = client.llm.create(
        general_prompt="You are a helpful assistant for {{customer_name}}.",
        begin_message="Hello {{customer_name}}!",
        model="gpt-4.1",
        start_speaker="agent",
        default_dynamic_variables={"customer_name": "friend"},
    )
    assert isinstance(llm, LlmResponse), type(llm)
    assert llm.llm_id.startswith("llm_"), llm.llm_id
    assert llm.general_prompt == "You are a helpful assistant for {{customer_name}}."
    assert llm.begin_message == "Hello {{customer_name}}!"
    assert llm.model == "gpt-4.1"
    assert llm.start_speaker == "agent"
    assert llm.default_dynamic_variables == {"customer_name": "friend"}
    assert llm.version == 0, llm.version
    assert isinstance(llm.last_modification_timestamp, int)

    step("llm.retrieve(version=0)")
    got_llm = client.llm.retrieve(llm.llm_id, version=0)
    assert isinstance(got_llm, LlmResponse)
    assert got_llm.llm_id == llm.llm_id and got_llm.version == 0
    assert got_llm.general_prompt == llm.general_prompt

    step("llm.update")
    updated_llm = client.llm.update(llm.llm_id, general_prompt="Be brief.", begin_message="Hi!")
    assert isinstance(updated_llm, LlmResponse)
    assert updated_llm.llm_id == llm.llm_id
    assert updated_llm.general_prompt == "Be brief."
    assert updated_llm.begin_message == "Hi!"
    assert updated_llm.model == "gpt-4.1", "update must keep fields it was not given"
    assert client.llm.retrieve(llm.llm_id).general_prompt == "Be brief."

    step("llm.list (paged)")
    seen_llms: list[str] = []
    key: str | None = None
    while True:
        page = client.llm.list(limit=2, sort_order="descending", **({"pagination_key": key} if key else {}))
        assert isinstance(page, LlmListResponse), type(page)
        items = page.items or []
        assert len(items) <= 2
        assert all(isinstance(item, LlmResponse) for item in items)
        seen_llms += [item.llm_id for item in items]
        if not page.has_more:
            break
        assert page.pagination_key
        key = page.pagination_key
    assert len(seen_llms) == len(set(seen_llms)), "LLM list repeated an item across pages"
    assert llm.llm_id in seen_llms

    # --- agents ---------------------------------------------------------------------------------
    step("agent.create (retell-llm engine)")
    llm_agent = client.agent.create(
        agent_name=f"sdk-llm-{tag}",
        voice_id=VOICE_ID,
        response_engine={"type": "retell-llm", "llm_id": llm.llm_id, "version": 0},
        language="en-US",
    )
    assert isinstance(llm_agent, AgentResponse), type(llm_agent)
    assert llm_agent.agent_id.startswith("agent_")
    assert llm_agent.version == 0
    assert llm_agent.agent_name == f"sdk-llm-{tag}"
    engine = llm_agent.response_engine
    assert engine.type == "retell-llm", engine
    assert getattr(engine, "llm_id", None) == llm.llm_id, engine
    assert llm_agent.voice_id == VOICE_ID
    time.sleep(0.01)  # distinct creation times: list order is then unambiguous

    step("llm.delete refused while an agent uses it")
    refused = expect_error(BadRequestError, lambda: client.llm.delete(llm.llm_id), 400)
    assert llm.llm_id in message(refused), message(refused)
    assert client.llm.retrieve(llm.llm_id).llm_id == llm.llm_id

    step("agent.create (custom-llm engine)")
    agent = client.agent.create(
        agent_name=f"sdk-custom-{tag}",
        voice_id=VOICE_ID,
        response_engine={"type": "custom-llm", "llm_websocket_url": WS_URL},
        responsiveness=0.8,
    )
    assert isinstance(agent, AgentResponse)
    assert agent.version == 0 and agent.is_published is False
    assert agent.response_engine.type == "custom-llm"
    assert getattr(agent.response_engine, "llm_websocket_url", None) == WS_URL
    assert agent.responsiveness == 0.8
    time.sleep(0.01)

    step("agent.create (third agent, for paging)")
    third = client.agent.create(
        agent_name=f"sdk-third-{tag}",
        voice_id=VOICE_ID,
        response_engine={"type": "custom-llm", "llm_websocket_url": WS_URL},
    )
    assert isinstance(third, AgentResponse)

    step("agent.retrieve(version=0)")
    got = client.agent.retrieve(agent.agent_id, version=0)
    assert isinstance(got, AgentResponse)
    assert got.agent_id == agent.agent_id and got.version == 0
    assert got.agent_name == f"sdk-custom-{tag}"
    assert got.responsiveness == 0.8

    step("agent.update (draft edited in place)")
    upd = client.agent.update(agent.agent_id, agent_name=f"sdk-custom-{tag}-v0", interruption_sensitivity=0.5)
    assert isinstance(upd, AgentResponse)
    assert upd.version == 0, "a draft is edited in place"
    assert upd.agent_name == f"sdk-custom-{tag}-v0"
    assert upd.interruption_sensitivity == 0.5
    assert upd.responsiveness == 0.8

    step("agent.list (limit + pagination_key through every page)")
    pages = list(all_agent_ids(client, limit=2))
    listed = [agent_id for ids, _ in pages for agent_id in ids]
    assert len(listed) == len(set(listed)), "agent list repeated an item across pages"
    mine = [a for a in listed if a in {llm_agent.agent_id, agent.agent_id, third.agent_id}]
    assert mine == [third.agent_id, agent.agent_id, llm_agent.agent_id], f"newest first: {mine}"
    assert len(pages) >= 2, "more than 2 agents with limit=2 must span pages"
    first = client.agent.list(limit=1000)
    names = {item.agent_id: item.agent_name for item in first.items or []}
    assert names[agent.agent_id] == f"sdk-custom-{tag}-v0", names.get(agent.agent_id)
    assert all(item.channel == "voice" for item in first.items or [])

    # --- versions and publishing ------------------------------------------------------------
    step("agent.list_versions (one draft)")
    versions = client.agent.list_versions(agent.agent_id)
    assert isinstance(versions, AgentListVersionsResponse), type(versions)
    assert [(v.version, v.is_published) for v in versions.items or []] == [(0, False)], versions

    step("agent.publish(version=0)")
    published = client.agent.publish(agent.agent_id, version=0, version_title="first")
    assert published is None, published
    versions = client.agent.list_versions(agent.agent_id)
    items = {v.version: v for v in versions.items or []}
    assert items[0].is_published is True, items
    assert items[0].version_title == "first", items[0]

    step("agent.update after publish makes a new draft")
    draft = client.agent.update(agent.agent_id, agent_name=f"sdk-custom-{tag}-v1")
    assert isinstance(draft, AgentResponse)
    assert draft.version == 1, draft.version
    assert draft.is_published is False
    assert draft.base_version == 0, draft.base_version
    assert draft.responsiveness == 0.8, "the new draft starts from the published version"
    assert client.agent.retrieve(agent.agent_id, version=0).agent_name == f"sdk-custom-{tag}-v0"
    assert client.agent.retrieve(agent.agent_id).version == 1
    versions = client.agent.list_versions(agent.agent_id, sort_order="ascending")
    assert [(v.version, v.is_published) for v in versions.items or []] == [(0, True), (1, False)], versions

    step("agent.update(version=0) of a published version is refused")
    ro = expect_error(BadRequestError, lambda: client.agent.update(agent.agent_id, version=0, agent_name="nope"), 400)
    assert "published" in message(ro), message(ro)

    step("agent.list_versions paged with limit=1")
    page1 = client.agent.list_versions(agent.agent_id, limit=1)
    assert [v.version for v in page1.items or []] == [1] and page1.has_more is True and page1.pagination_key
    page2 = client.agent.list_versions(agent.agent_id, limit=1, pagination_key=page1.pagination_key)
    assert [v.version for v in page2.items or []] == [0] and page2.has_more is False

    step("agent.create_version(base_version=0)")
    created_version = client.agent.create_version(agent.agent_id, base_version=0)
    assert isinstance(created_version, AgentResponse), type(created_version)
    assert created_version.version == 2 and created_version.base_version == 0
    assert created_version.agent_name == f"sdk-custom-{tag}-v0"

    if hasattr(client.agent, "get_versions"):
        step("agent.get_versions (legacy bare array)")
        every = client.agent.get_versions(agent.agent_id)
        assert isinstance(every, list), type(every)
        assert all(isinstance(a, AgentResponse) for a in every)
        assert [a.version for a in every] == [0, 1, 2], [a.version for a in every]
        assert [a.is_published for a in every] == [True, False, False]

    step("agent.delete_version(version=2)")
    assert client.agent.delete_version(agent.agent_id, version=2) is None
    expect_error(NotFoundError, lambda: client.agent.retrieve(agent.agent_id, version=2), 404)
    refused_delete = expect_error(BadRequestError, lambda: client.agent.delete_version(agent.agent_id, version=0), 400)
    assert "published" in message(refused_delete), message(refused_delete)

    # --- web calls ------------------------------------------------------------------------------
    step("call.create_web_call (agent_version int, metadata, dynamic variables, agent_override)")
    call_metadata = {"customer_id": f"c-{tag}", "nested": {"n": 1, "list": [1, "two"]}}
    dyn = {"customer_name": "Ada", "empty": ""}
    created = client.call.create_web_call(
        agent_id=agent.agent_id,
        agent_version=0,
        metadata=call_metadata,
        retell_llm_dynamic_variables=dyn,
        agent_override={"agent": {"agent_name": "Per-call name"}},
    )
    if v3_web_call:
        from retell.types import CreateWebCallResponse

        assert isinstance(created, CreateWebCallResponse), type(created)
        assert created.transport == "gateway", created.transport
        assert isinstance(created.ice_servers, list), created.ice_servers
        assert isinstance(created.expires_at, int) and created.expires_at > now_ms, created.expires_at
    else:
        assert isinstance(created, WebCallResponse), type(created)
        assert created.call_type == "web_call"
        assert created.call_status == "registered", created.call_status
        assert created.agent_id == agent.agent_id
        assert created.agent_version == 0
        assert created.metadata == call_metadata
        assert created.retell_llm_dynamic_variables == dyn
    assert created.call_id.startswith("call_"), created.call_id
    assert isinstance(created.access_token, str) and len(created.access_token) > 20

    step("call.retrieve (registered web call)")
    call = client.call.retrieve(created.call_id)
    assert isinstance(call, WebCallResponse), f"call.retrieve returned {type(call).__name__}"
    assert call.call_type == "web_call"
    assert call.call_id == created.call_id
    assert call.call_status == "registered", call.call_status
    assert call.agent_id == agent.agent_id
    assert call.agent_version == 0, call.agent_version
    assert call.agent_name == "Per-call name", call.agent_name
    assert call.metadata == call_metadata, call.metadata
    assert call.retell_llm_dynamic_variables == dyn, call.retell_llm_dynamic_variables
    assert isinstance(call.access_token, str) and call.access_token
    assert call.disconnection_reason is None and call.end_timestamp is None
    assert client.agent.retrieve(agent.agent_id, version=0).agent_name == f"sdk-custom-{tag}-v0", (
        "agent_override must not change the stored agent"
    )

    step("call.create_web_call (latest draft, no version)")
    latest = client.call.create_web_call(agent_id=agent.agent_id)
    assert client.call.retrieve(latest.call_id).agent_version == 1

    step("call.list (filter by agent, ascending, limit, pagination_key, include_total)")
    listed_calls: list[str] = []
    for _ in range(3):
        made = client.call.create_web_call(agent_id=third.agent_id, metadata={"i": len(listed_calls)})
        listed_calls.append(made.call_id)
        time.sleep(0.01)
    criteria: Any = {"agent": [{"agent_id": third.agent_id}]}
    page_a = client.call.list(filter_criteria=criteria, sort_order="ascending", limit=2, include_total=True)
    assert isinstance(page_a, CallListResponse), type(page_a)
    assert page_a.has_more is True and page_a.pagination_key, page_a
    assert page_a.total == 3, page_a.total
    assert [c.call_id for c in page_a.items] == listed_calls[:2], [c.call_id for c in page_a.items]
    for item in page_a.items:
        assert type(item).__name__ == "ItemV3WebCallResponse", type(item).__name__
        assert item.call_type == "web_call" and item.agent_id == third.agent_id
        assert item.call_status == "registered" and item.access_token
        assert "transcript" not in item.model_dump(exclude_none=True), "v3 list items carry no transcript"
    page_b = client.call.list(
        filter_criteria=criteria, sort_order="ascending", limit=2, pagination_key=page_a.pagination_key
    )
    assert [c.call_id for c in page_b.items] == listed_calls[2:], [c.call_id for c in page_b.items]
    assert page_b.has_more is False
    assert page_b.total is None, "total only with include_total"
    newest = client.call.list(filter_criteria=criteria, sort_order="descending", limit=1)
    assert [c.call_id for c in newest.items] == [listed_calls[-1]]
    by_version = client.call.list(filter_criteria={"agent": [{"agent_id": agent.agent_id, "version": [0]}]})
    assert [c.call_id for c in by_version.items] == [created.call_id], [c.call_id for c in by_version.items]

    step("call.update (metadata replaced)")
    updated_call = client.call.update(created.call_id, metadata={"replaced": True})
    assert isinstance(updated_call, WebCallResponse), type(updated_call)
    assert updated_call.metadata == {"replaced": True}, updated_call.metadata
    assert client.call.retrieve(created.call_id).metadata == {"replaced": True}

    step("call.update (data_storage_setting only more restrictive)")
    stricter = client.call.update(created.call_id, data_storage_setting="everything_except_pii")
    assert stricter.data_storage_setting == "everything_except_pii"
    looser = expect_error(
        BadRequestError, lambda: client.call.update(created.call_id, data_storage_setting="everything"), 400
    )
    assert "data_storage_setting" in message(looser), message(looser)
    assert client.call.retrieve(created.call_id).data_storage_setting == "everything_except_pii"

    step("call.stop")
    assert client.call.stop(created.call_id) is None
    stopped = client.call.retrieve(created.call_id)
    assert isinstance(stopped, WebCallResponse)
    assert stopped.call_status == "ended", stopped.call_status
    assert stopped.disconnection_reason == "manual_stopped", stopped.disconnection_reason
    assert isinstance(stopped.end_timestamp, int)
    expect_error(BadRequestError, lambda: client.call.stop(created.call_id), 400)

    step("call.delete")
    assert client.call.delete(created.call_id) is None
    expect_error(NotFoundError, lambda: client.call.retrieve(created.call_id), 404)
    expect_error(NotFoundError, lambda: client.call.delete(created.call_id), 404)

    # --- voices and concurrency -----------------------------------------------------------------
    step("voice.list")
    voices = client.voice.list()
    assert isinstance(voices, list), type(voices)
    assert all(isinstance(v, VoiceResponse) for v in voices)
    assert len({v.voice_id for v in voices}) == len(voices)
    step(f"voice.retrieve ({len(voices)} voices installed)")
    for voice in voices:
        one = client.voice.retrieve(voice.voice_id)
        assert isinstance(one, VoiceResponse)
        assert one.model_dump() == voice.model_dump(), (one, voice)
    expect_error(NotFoundError, lambda: client.voice.retrieve(f"no-such-voice-{tag}"), 404)

    step("concurrency.retrieve")
    conc = client.concurrency.retrieve()
    assert isinstance(conc, ConcurrencyRetrieveResponse), type(conc)
    assert isinstance(conc.current_concurrency, int) and conc.current_concurrency >= 0, conc
    assert isinstance(conc.concurrency_limit, int) and conc.concurrency_limit >= 1, conc
    assert conc.current_concurrency <= conc.concurrency_limit

    if hasattr(client, "identity"):
        step("identity.retrieve")
        me = client.identity.retrieve()
        assert isinstance(me.org_id, str) and me.org_id, me
        assert isinstance(me.org_name, str) and me.org_name, me

    # --- errors ---------------------------------------------------------------------------------
    step("error: non-string dynamic variable -> BadRequestError naming the field")
    bad_dyn = expect_error(
        BadRequestError,
        lambda: client.call.create_web_call(
            agent_id=agent.agent_id,
            retell_llm_dynamic_variables={"count": 5},  # type: ignore[dict-item]
        ),
        400,
    )
    assert "retell_llm_dynamic_variables" in message(bad_dyn), message(bad_dyn)

    step("error: responsiveness 5 -> BadRequestError naming the field")
    bad_resp = expect_error(BadRequestError, lambda: client.agent.update(agent.agent_id, responsiveness=5), 400)
    assert "responsiveness" in message(bad_resp), message(bad_resp)
    assert client.agent.retrieve(agent.agent_id).responsiveness == 0.8

    step("error: wrong API key -> AuthenticationError")
    with Retell(
        api_key="key_" + "0" * 48, base_url=base_url, _strict_response_validation=True, max_retries=0
    ) as bad_client:
        expect_error(AuthenticationError, lambda: bad_client.agent.list(), 401)
        expect_error(AuthenticationError, lambda: bad_client.call.retrieve(created.call_id), 401)

    step("error: unknown ids -> NotFoundError")
    expect_error(NotFoundError, lambda: client.agent.retrieve(f"agent_missing{tag}"), 404)
    expect_error(NotFoundError, lambda: client.llm.retrieve(f"llm_missing{tag}"), 404)
    expect_error(NotFoundError, lambda: client.call.retrieve(f"call_missing{tag}"), 404)
    expect_error(NotFoundError, lambda: client.call.update(f"call_missing{tag}", metadata={}), 404)
    expect_error(NotFoundError, lambda: client.agent.delete(f"agent_missing{tag}"), 404)

    # --- deletes --------------------------------------------------------------------------------
    step("llm.delete(force_delete=True)")
    assert client.llm.delete(llm.llm_id, force_delete=True) is None
    expect_error(NotFoundError, lambda: client.llm.retrieve(llm.llm_id), 404)

    step("agent.delete")
    for victim in (llm_agent, third):
        assert client.agent.delete(victim.agent_id) is None
        expect_error(NotFoundError, lambda v=victim: client.agent.retrieve(v.agent_id), 404)  # type: ignore[misc]
    remaining = {a for ids, _ in all_agent_ids(client, limit=1000) for a in ids}
    assert agent.agent_id in remaining and llm_agent.agent_id not in remaining and third.agent_id not in remaining


def main() -> int:
    base_url = os.environ["RETELL_BASE_URL"]
    api_key = os.environ["RETELL_API_KEY"]
    version = sdk_version()
    print(f"retell-sdk version: {version} ({Path(retell.__file__).resolve().parent})", flush=True)
    try:
        with Retell(api_key=api_key, base_url=base_url, _strict_response_validation=True, max_retries=0) as client:
            run(client, base_url, version)
    except Exception:
        traceback.print_exc()
        print("FAILED", flush=True)
        return 1
    print("OK: every step passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
