"""Agent endpoints (spec A.2): CRUD, versions, publishing, and the legacy list and publish paths."""

from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from voxline.api.auth import ApiKeyDep, StorableUrlDep, get_services
from voxline.api.wire import ERROR_RESPONSES, no_content, wire, wire_list
from voxline.schemas.agent import (
    AgentCreateRequest,
    AgentListRequest,
    AgentListResponse,
    AgentResponse,
    AgentUpdateRequest,
    AgentVersionListResponse,
    CreateAgentVersionRequest,
    PublishAgentVersionRequest,
)
from voxline.schemas.base import MAX_INT32

router = APIRouter(dependencies=[ApiKeyDep, StorableUrlDep], responses=ERROR_RESPONSES, tags=["Agent"])
SortOrder = Literal["ascending", "descending"]


@router.post("/create-agent", response_model=AgentResponse, status_code=201)
async def create_agent(request: Request, body: AgentCreateRequest) -> Response:
    return wire(await get_services(request).agents.create(body), 201)


@router.get("/get-agent/{agent_id}", response_model=AgentResponse)
async def get_agent(request: Request, agent_id: str, version: int | None = Query(None, ge=0, le=MAX_INT32)) -> Response:
    return wire(await get_services(request).agents.get(agent_id, version))


@router.patch("/update-agent/{agent_id}", response_model=AgentResponse)
async def update_agent(
    request: Request, agent_id: str, body: AgentUpdateRequest, version: int | None = Query(None, ge=0, le=MAX_INT32)
) -> Response:
    return wire(await get_services(request).agents.update(agent_id, body, version))


@router.delete("/delete-agent/{agent_id}", status_code=204, response_class=Response)
async def delete_agent(request: Request, agent_id: str) -> Response:
    await get_services(request).agents.delete(agent_id)
    return no_content()


@router.post("/v2/list-agents", response_model=AgentListResponse)
async def list_agents(
    request: Request,
    body: AgentListRequest | None = None,
    limit: int = Query(1000, ge=1, le=1000),
    pagination_key: str | None = None,
    sort_order: SortOrder = "descending",
) -> Response:
    criteria = body.filter_criteria if body else None
    if criteria and criteria.channel is not None and not _channel_matches(criteria.channel.op, criteria.channel.value):
        return wire(AgentListResponse(items=[], has_more=False))
    repo = get_services(request).agents
    agents, key = await repo.list_latest(
        limit,
        pagination_key,
        sort_order == "descending",
        query_text=criteria.query if criteria else None,
        is_transfer_agent=criteria.is_transfer_agent.value if criteria and criteria.is_transfer_agent else None,
    )
    return wire(
        AgentListResponse(items=[repo.summary(a) for a in agents], has_more=key is not None, pagination_key=key)
    )


def _channel_matches(op: str, value: str) -> bool:
    """Every agent here is a voice agent: does "voice" pass the channel filter?"""
    checks = {
        "eq": "voice" == value,
        "ne": "voice" != value,
        "sw": "voice".startswith(value),
        "ew": "voice".endswith(value),
        "co": value in "voice",
    }
    return checks.get(op, False)


@router.get("/list-agents", response_model=list[AgentResponse], summary="List agents (legacy, bare array)")
async def list_agents_legacy(
    request: Request,
    limit: int = Query(1000, ge=1, le=1000),
    pagination_key: str | None = Query(None, description="The last agent_id of the previous page (exclusive)."),
    pagination_key_version: int | None = Query(None, description="Accepted for older SDKs; ignored."),
    sort_order: SortOrder = "descending",
) -> Response:
    repo = get_services(request).agents
    key = await repo.key_after(pagination_key) if pagination_key else None
    agents, _ = await repo.list_latest(limit, key, sort_order == "descending")
    return wire_list(agents, AgentResponse)


@router.get("/list-agent-versions/{agent_id}", response_model=AgentVersionListResponse)
async def list_agent_versions(
    request: Request,
    agent_id: str,
    limit: int = Query(1000, ge=1, le=1000),
    pagination_key: str | None = None,
    sort_order: SortOrder = "descending",
) -> Response:
    repo = get_services(request).agents
    versions = await repo.versions(agent_id)
    if sort_order == "descending":
        versions.reverse()
    if pagination_key is not None:
        if not pagination_key.isdigit():
            return wire(AgentVersionListResponse(items=[], has_more=False))
        last = int(pagination_key)
        versions = [v for v in versions if (v.version < last if sort_order == "descending" else v.version > last)]
    page, more = versions[:limit], len(versions) > limit
    return wire(
        AgentVersionListResponse(
            items=[repo.version_item(v) for v in page],
            has_more=more,
            pagination_key=str(page[-1].version) if more else None,
        )
    )


@router.get(
    "/get-agent-versions/{agent_id}",
    response_model=list[AgentResponse],
    summary="All versions (legacy, bare array)",
)
async def get_agent_versions_legacy(request: Request, agent_id: str) -> Response:
    return wire_list(await get_services(request).agents.versions(agent_id), AgentResponse)


@router.post("/create-agent-version/{agent_id}", response_model=AgentResponse, status_code=201)
async def create_agent_version(request: Request, agent_id: str, body: CreateAgentVersionRequest) -> Response:
    return wire(await get_services(request).agents.create_version(agent_id, body.base_version), 201)


@router.delete("/delete-agent-version/{agent_id}", status_code=204, response_class=Response)
async def delete_agent_version(request: Request, agent_id: str, version: int = Query(ge=0, le=MAX_INT32)) -> Response:
    await get_services(request).agents.delete_version(agent_id, version)
    return no_content()


@router.post("/publish-agent-version/{agent_id}", status_code=204, response_class=Response)
async def publish_agent_version(request: Request, agent_id: str, body: PublishAgentVersionRequest) -> Response:
    await get_services(request).agents.publish(agent_id, body.version, body.version_title, body.version_description)
    return no_content()


@router.post("/publish-agent/{agent_id}", response_model=AgentResponse, summary="Publish the latest version (legacy)")
async def publish_agent_legacy(request: Request, agent_id: str) -> Response:
    return wire(await get_services(request).agents.publish(agent_id, None))
