"""Voices, concurrency and key identity: what this server can do right now."""

from fastapi import APIRouter, Request, Response

from voxline.api.auth import ApiKeyDep, StorableUrlDep, get_services
from voxline.api.wire import ERROR_RESPONSES, wire, wire_list
from voxline.errors import NotFound
from voxline.schemas.misc import ApiKeyInfoResponse, ConcurrencyResponse, VoiceResponse
from voxline.speech.voices import available_voices, find_voice

router = APIRouter(dependencies=[ApiKeyDep, StorableUrlDep], responses=ERROR_RESPONSES, tags=["Account"])


@router.get("/list-voices", response_model=list[VoiceResponse])
async def list_voices() -> Response:
    return wire_list([v.to_response() for v in available_voices()], VoiceResponse)


@router.get("/get-voice/{voice_id}", response_model=VoiceResponse)
async def get_voice(voice_id: str) -> Response:
    voice = find_voice(voice_id)
    if voice is None:
        raise NotFound(f"voice {voice_id} not found")
    return wire(voice.to_response())


@router.get("/get-concurrency", response_model=ConcurrencyResponse)
async def get_concurrency(request: Request) -> Response:
    services = get_services(request)
    limit = services.settings.max_concurrent_calls
    return wire(
        ConcurrencyResponse(
            current_concurrency=await services.calls.calls.count_ongoing(),
            concurrency_limit=limit,
            base_concurrency=limit,
            purchased_concurrency=0,
            concurrency_purchase_limit=0,
            remaining_purchase_limit=0,
            concurrency_burst_enabled=False,
            concurrency_burst_limit=0,
            reserved_inbound_concurrency=0,
        )
    )


@router.get("/get-api-key-info", response_model=ApiKeyInfoResponse)
async def get_api_key_info(request: Request) -> Response:
    key = request.state.api_key
    return wire(ApiKeyInfoResponse(org_id="voxline", org_name="Voxline (self-hosted)", api_key_name=key.name))
