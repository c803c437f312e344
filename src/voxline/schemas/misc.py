"""Small wire models: voices, concurrency, identity."""

from voxline.schemas.base import WireModel
from voxline.schemas.enums import Gender, VoiceProvider


class VoiceResponse(WireModel):
    voice_id: str
    voice_name: str
    provider: VoiceProvider
    gender: Gender
    accent: str | None = None
    age: str | None = None
    avatar_url: str | None = None
    preview_audio_url: str | None = None


class ConcurrencyResponse(WireModel):
    base_concurrency: int | None = None
    concurrency_burst_enabled: bool | None = None
    concurrency_burst_limit: int | None = None
    concurrency_limit: int | None = None
    concurrency_purchase_limit: int | None = None
    current_concurrency: int | None = None
    purchased_concurrency: int | None = None
    remaining_purchase_limit: int | None = None
    reserved_inbound_concurrency: int | None = None


class ApiKeyInfoResponse(WireModel):
    org_id: str
    org_name: str
    api_key_name: str | None = None
