"""Call endpoints (spec A.1, B): create (v2, v3, v1 register), get, list, update, stop, delete."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from voxline.api.auth import ApiKeyDep, StorableUrlDep, get_services
from voxline.api.wire import ERROR_RESPONSES, no_content, wire, wire_list
from voxline.calls.latency import answers_user, turn_stages
from voxline.schemas.call import (
    CallResponse,
    CreateWebCallRequest,
    CreateWebCallV3Response,
    LegacyListCallsRequest,
    ListCallsRequest,
    ListCallsResponse,
    RegisterCallRequest,
    RegisterCallResponse,
    UpdateCallRequest,
    UpdateLiveCallRequest,
    UpdateLiveCallResponse,
)

router = APIRouter(dependencies=[ApiKeyDep, StorableUrlDep], responses=ERROR_RESPONSES, tags=["Call"])


@router.post("/v3/create-web-call", response_model=CreateWebCallV3Response, status_code=201)
async def create_web_call_v3(request: Request, body: CreateWebCallRequest) -> Response:
    calls = get_services(request).calls
    return wire(calls.v3_response(await calls.create_web_call(body)), 201)


@router.post("/v2/create-web-call", response_model=CallResponse, status_code=201)
async def create_web_call_v2(request: Request, body: CreateWebCallRequest) -> Response:
    calls = get_services(request).calls
    return wire(calls.to_response(await calls.create_web_call(body)), 201)


@router.post("/register-call", response_model=RegisterCallResponse, status_code=201, summary="Register a call (v1)")
async def register_call(request: Request, body: RegisterCallRequest) -> Response:
    _, response = await get_services(request).calls.register_call(body)
    return wire(response, 201)


@router.get("/v2/get-call/{call_id}", response_model=CallResponse)
async def get_call(request: Request, call_id: str) -> Response:
    calls = get_services(request).calls
    return wire(calls.to_response(await calls.get(call_id)))


@router.post("/v3/list-calls", response_model=ListCallsResponse)
async def list_calls(request: Request, body: ListCallsRequest | None = None) -> Response:
    return wire(await get_services(request).calls.list_v3(body or ListCallsRequest()))


@router.post("/v2/list-calls", response_model=list[CallResponse], summary="List calls (legacy, bare array)")
async def list_calls_legacy(request: Request, body: LegacyListCallsRequest | None = None) -> Response:
    items = await get_services(request).calls.list_legacy(body or LegacyListCallsRequest())
    return wire_list(items, CallResponse)


@router.patch("/v2/update-call/{call_id}", response_model=CallResponse)
async def update_call(request: Request, call_id: str, body: UpdateCallRequest) -> Response:
    calls = get_services(request).calls
    return wire(calls.to_response(await calls.update(call_id, body)))


@router.patch("/v2/update-live-call/{call_id}", response_model=UpdateLiveCallResponse)
async def update_live_call(request: Request, call_id: str, body: UpdateLiveCallRequest) -> Response:
    await get_services(request).calls.update_live(call_id, body)
    return wire(UpdateLiveCallResponse(success=True))


@router.put("/rerun-call-analysis/{call_id}", response_model=CallResponse)
async def rerun_call_analysis(request: Request, call_id: str) -> Response:
    services = get_services(request)
    return wire(services.calls.to_response(await services.after_call.rerun_analysis(call_id)))


@router.get("/voxline/call-turns/{call_id}", include_in_schema=False)
async def call_turns(request: Request, call_id: str) -> Response:
    """Voxline extension (the console's latency chart): each turn's stages in ms, from the same
    marks as the call's `latency`, so the chart can put a turn's stages side by side."""
    row = await get_services(request).calls.get(call_id)
    turns = [
        {
            "response_id": marks.get("response_id"),
            "reminder": bool(marks.get("reminder")),
            "answers_user": answers_user(marks),
            "stages": turn_stages(marks),
        }
        for marks in row.config.get("latency_marks") or []
    ]
    return JSONResponse({"call_id": call_id, "turns": turns})


@router.post("/v2/stop-call/{call_id}", status_code=204, response_class=Response)
async def stop_call(request: Request, call_id: str) -> Response:
    await get_services(request).calls.stop(call_id)
    return no_content()


@router.delete("/v2/delete-call/{call_id}", status_code=204, response_class=Response)
async def delete_call(request: Request, call_id: str) -> Response:
    await get_services(request).calls.delete(call_id)
    return no_content()
