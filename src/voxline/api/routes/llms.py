"""Retell LLM endpoints (spec A.3), including the legacy bare-array list."""

from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from voxline.api.auth import ApiKeyDep, StorableUrlDep, get_services
from voxline.api.wire import ERROR_RESPONSES, no_content, wire, wire_list
from voxline.schemas.base import MAX_INT32
from voxline.schemas.llm import LlmCreateRequest, LlmListResponse, LlmResponse, LlmUpdateRequest

router = APIRouter(dependencies=[ApiKeyDep, StorableUrlDep], responses=ERROR_RESPONSES, tags=["Retell LLM"])


@router.post("/create-retell-llm", response_model=LlmResponse, status_code=201)
async def create_retell_llm(request: Request, body: LlmCreateRequest) -> Response:
    return wire(await get_services(request).llms.create(body), 201)


@router.get("/get-retell-llm/{llm_id}", response_model=LlmResponse)
async def get_retell_llm(
    request: Request, llm_id: str, version: int | None = Query(None, ge=0, le=MAX_INT32)
) -> Response:
    return wire(await get_services(request).llms.get(llm_id, version))


@router.patch("/update-retell-llm/{llm_id}", response_model=LlmResponse)
async def update_retell_llm(
    request: Request, llm_id: str, body: LlmUpdateRequest, version: int | None = Query(None, ge=0, le=MAX_INT32)
) -> Response:
    return wire(await get_services(request).llms.update(llm_id, body, version))


@router.get("/v2/list-retell-llms", response_model=LlmListResponse)
async def list_retell_llms(
    request: Request,
    limit: int = Query(1000, ge=1, le=1000),
    pagination_key: str | None = None,
    sort_order: Literal["ascending", "descending"] = "descending",
) -> Response:
    items, key = await get_services(request).llms.list(limit, pagination_key, sort_order == "descending")
    return wire(LlmListResponse(items=items, has_more=key is not None, pagination_key=key))


@router.get("/list-retell-llms", response_model=list[LlmResponse], summary="List Retell LLMs (legacy, bare array)")
async def list_retell_llms_legacy(
    request: Request,
    limit: int = Query(1000, ge=1, le=1000),
    pagination_key: str | None = Query(None, description="The last llm_id of the previous page (exclusive)."),
    pagination_key_version: int | None = Query(None, description="Accepted for older SDKs; ignored."),
    sort_order: Literal["ascending", "descending"] = "descending",
) -> Response:
    repo = get_services(request).llms
    key = await repo.key_after(pagination_key) if pagination_key else None
    items, _ = await repo.list(limit, key, sort_order == "descending")
    return wire_list(items, LlmResponse)


@router.delete("/delete-retell-llm/{llm_id}", status_code=204, response_class=Response)
async def delete_retell_llm(request: Request, llm_id: str, force_delete: bool = False) -> Response:
    await get_services(request).llms.delete(llm_id, force_delete)
    return no_content()
