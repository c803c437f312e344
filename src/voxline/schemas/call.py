"""Call wire models (spec B): create/register requests, the call object, update and list bodies."""

from typing import Any, Literal

from pydantic import Field

from voxline.schemas.agent import AgentFields
from voxline.schemas.agent_parts import ResponseEngine
from voxline.schemas.base import Int64, RequestModel, Version, WireModel
from voxline.schemas.enums import CallStatus, DataStorageSetting, DisconnectionReason, UserSentiment
from voxline.schemas.llm import LlmOverrideFields
from voxline.schemas.transcript import TranscriptItem, Utterance

DynamicVariables = dict[str, str]
"""Dynamic-variable values must be strings (a number is a 400, as on Retell)."""


class AgentOverrideAgent(AgentFields):
    response_engine: ResponseEngine | None = None
    voice_id: str | None = Field(default=None, min_length=1)


class AgentOverride(WireModel):
    """Per-call settings laid over the agent and its LLM; the stored agent is unchanged."""

    agent: AgentOverrideAgent | None = None
    retell_llm: LlmOverrideFields | None = None
    conversation_flow: dict[str, Any] | None = None


class CreateWebCallRequest(RequestModel):
    """Body of `POST /v2/create-web-call` and `POST /v3/create-web-call`."""

    agent_id: str = Field(min_length=1)
    agent_version: Version | str | None = None
    agent_override: AgentOverride | None = None
    current_state: str | None = None
    current_node_id: str | None = None
    metadata: dict[str, Any] | None = None
    retell_llm_dynamic_variables: DynamicVariables | None = None
    data_storage_setting: DataStorageSetting | None = None
    opt_out_sensitive_data_storage: bool | None = None


class RegisterCallRequest(RequestModel):
    """Body of the v1 `POST /register-call` that web client 1.x apps use."""

    agent_id: str = Field(min_length=1)
    audio_websocket_protocol: Literal["web"] = "web"
    audio_encoding: Literal["s16le", "mulaw"] = "s16le"
    sample_rate: int = Field(ge=8_000, le=48_000)
    end_call_after_silence_ms: int | None = Field(default=None, ge=10_000)
    from_number: str | None = None
    to_number: str | None = None
    metadata: dict[str, Any] | None = None
    retell_llm_dynamic_variables: DynamicVariables | None = None


class RegisterCallResponse(WireModel):
    call_id: str
    agent_id: str
    audio_websocket_protocol: str
    audio_encoding: str
    sample_rate: int
    call_status: CallStatus
    start_timestamp: int
    end_call_after_silence_ms: int | None = None
    from_number: str | None = None
    to_number: str | None = None
    metadata: dict[str, Any] | None = None
    retell_llm_dynamic_variables: DynamicVariables | None = None


class LatencyStats(WireModel):
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    min: float | None = None
    num: float | None = None
    values: list[float] | None = None


class Latency(WireModel):
    e2e: LatencyStats | None = None
    asr: LatencyStats | None = None
    llm: LatencyStats | None = None
    llm_websocket_network_rtt: LatencyStats | None = None
    tts: LatencyStats | None = None
    knowledge_base: LatencyStats | None = None
    s2s: LatencyStats | None = None


class CallAnalysis(WireModel):
    call_summary: str | None = None
    call_successful: bool | None = None
    user_sentiment: UserSentiment | None = None
    in_voicemail: bool | None = None
    custom_analysis_data: dict[str, Any] | None = None


class ProductCost(WireModel):
    product: str
    cost: float
    unit_price: float | None = None
    is_transfer_leg_cost: bool | None = None


class CallCost(WireModel):
    product_costs: list[ProductCost]
    total_duration_seconds: float
    total_duration_unit_price: float
    combined_cost: float


class LlmTokenUsage(WireModel):
    values: list[float]
    average: float
    num_requests: float


class CallSummaryFields(WireModel):
    """The call object as list endpoints return it (no transcripts)."""

    call_type: Literal["web_call"] = "web_call"
    access_token: str
    call_id: str
    agent_id: str
    agent_version: int
    call_status: CallStatus
    agent_name: str | None = None
    agent_tag: str | None = None
    metadata: dict[str, Any] | None = None
    retell_llm_dynamic_variables: DynamicVariables | None = None
    collected_dynamic_variables: DynamicVariables | None = None
    custom_sip_headers: dict[str, str] | None = None
    data_storage_setting: DataStorageSetting | None = None
    opt_in_signed_url: bool | None = None
    start_timestamp: int | None = None
    end_timestamp: int | None = None
    duration_ms: int | None = None
    transfer_end_timestamp: int | None = None
    recording_url: str | None = None
    recording_multi_channel_url: str | None = None
    scrubbed_recording_url: str | None = None
    scrubbed_recording_multi_channel_url: str | None = None
    public_log_url: str | None = None
    knowledge_base_retrieved_contents_url: str | None = None
    latency: Latency | None = None
    disconnection_reason: DisconnectionReason | None = None
    transfer_destination: str | None = None
    call_analysis: CallAnalysis | None = None
    call_cost: CallCost | None = None
    llm_token_usage: LlmTokenUsage | None = None
    custom_attributes: dict[str, str | float | bool] | None = None


class CallResponse(CallSummaryFields):
    """The whole web-call object (`GET /v2/get-call/{call_id}`, webhooks, v2 create)."""

    transcript: str | None = None
    transcript_object: list[Utterance] | None = None
    transcript_with_tool_calls: list[TranscriptItem] | None = None
    scrubbed_transcript_with_tool_calls: list[TranscriptItem] | None = None
    pre_session_transcript_with_tool_calls: list[TranscriptItem] | None = None
    post_session_transcript_with_tool_calls: list[TranscriptItem] | None = None
    scrubbed_pre_session_transcript_with_tool_calls: list[TranscriptItem] | None = None
    scrubbed_post_session_transcript_with_tool_calls: list[TranscriptItem] | None = None


class IceServer(WireModel):
    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class CreateWebCallV3Response(CallResponse):
    """`POST /v3/create-web-call`: the call object plus how to join it.

    `transport` is the literal the SDK's strict validation accepts ("gateway").
    """

    expires_at: int
    ice_servers: list[IceServer]
    transport: Literal["gateway"] = "gateway"


class UpdateCallRequest(RequestModel):
    """Body of `PATCH /v2/update-call/{call_id}`."""

    metadata: dict[str, Any] | None = None
    data_storage_setting: DataStorageSetting | None = None
    custom_attributes: dict[str, str | float | bool] | None = None


class LiveCallControl(WireModel):
    additional_context: str | None = None
    """Non-empty: an `injected` transcript item, and context for the agent's next reply."""
    trigger_response: bool | None = None
    """Make the agent respond now (interrupting it when it may be interrupted)."""


class LiveCallOverrides(WireModel):
    data_storage_setting: DataStorageSetting | None = None
    metadata: dict[str, Any] | None = None
    override_dynamic_variables: dict[str, str] | None = None
    """Merged into the call's dynamic variables (highest priority); `null` clears the overrides."""


class UpdateLiveCallRequest(RequestModel):
    """Body of `PATCH /v2/update-live-call/{call_id}` (the call must be ongoing)."""

    call_control: LiveCallControl | None = None
    fields_to_override: LiveCallOverrides | None = None


class UpdateLiveCallResponse(WireModel):
    success: bool


# --- list-calls (v3) -------------------------------------------------------------------------

StringOp = Literal["eq", "ne", "sw", "ew", "co"]
NumberOp = Literal["eq", "ne", "gt", "ge", "lt", "le"]


class EnumFilter(WireModel):
    type: Literal["enum"]
    op: Literal["in"]
    value: list[str]


class StringFilter(WireModel):
    type: Literal["string"]
    op: StringOp
    value: str


class BooleanFilter(WireModel):
    type: Literal["boolean"]
    op: Literal["eq"]
    value: bool


class NumberFilter(WireModel):
    type: Literal["number"]
    op: NumberOp
    value: float


class RangeFilter(WireModel):
    type: Literal["range"]
    op: Literal["bt"]
    value: list[float] = Field(min_length=2, max_length=2)


class PresentFilter(WireModel):
    type: Literal["present"]
    op: Literal["pr", "np"]
    key: str


class KeyedStringFilter(StringFilter):
    key: str


class KeyedNumberFilter(NumberFilter):
    key: str


class KeyedBooleanFilter(BooleanFilter):
    key: str


class KeyedRangeFilter(RangeFilter):
    key: str


class KeyedEnumFilter(EnumFilter):
    key: str


NumberOrRange = NumberFilter | RangeFilter
KeyedFilter = (
    KeyedStringFilter | KeyedNumberFilter | KeyedBooleanFilter | KeyedRangeFilter | KeyedEnumFilter | PresentFilter
)


class AgentFilter(WireModel):
    agent_id: str
    version: list[Version] | None = None


class CallFilterCriteria(WireModel):
    agent: list[AgentFilter] | None = None
    call_id: StringFilter | EnumFilter | None = None
    call_status: EnumFilter | None = None
    call_type: EnumFilter | None = None
    disconnection_reason: EnumFilter | None = None
    user_sentiment: EnumFilter | None = None
    data_storage_setting: EnumFilter | None = None
    call_successful: BooleanFilter | None = None
    in_voicemail: BooleanFilter | None = None
    start_timestamp: NumberOrRange | None = None
    end_timestamp: NumberOrRange | None = None
    duration_ms: NumberOrRange | None = None
    metadata: list[KeyedFilter] | None = None
    dynamic_variables: list[KeyedFilter] | None = None


class ListCallsRequest(RequestModel):
    """Body of `POST /v3/list-calls`."""

    filter_criteria: CallFilterCriteria | None = None
    sort_order: Literal["ascending", "descending"] = "descending"
    limit: int = Field(default=50, ge=1, le=1000)
    skip: int | None = Field(default=None, ge=0, le=2**63 - 1)
    pagination_key: str | None = None
    include_total: bool = False


class ListCallsResponse(WireModel):
    items: list[CallSummaryFields]
    has_more: bool
    pagination_key: str | None = None
    total: int | None = None


class Threshold(WireModel):
    lower_threshold: Int64 | None = None
    upper_threshold: Int64 | None = None


class LegacyCallFilterCriteria(WireModel):
    """Filters of the legacy `POST /v2/list-calls` (lists of accepted values)."""

    agent_id: list[str] | None = None
    version: list[Version] | None = None
    call_id: list[str] | None = None
    call_status: list[CallStatus] | None = None
    call_type: list[str] | None = None
    disconnection_reason: list[DisconnectionReason] | None = None
    user_sentiment: list[UserSentiment] | None = None
    call_successful: list[bool] | None = None
    in_voicemail: list[bool] | None = None
    metadata: dict[str, list[str]] | None = None
    dynamic_variables: dict[str, list[str]] | None = None
    start_timestamp: Threshold | None = None
    end_timestamp: Threshold | None = None
    duration_ms: Threshold | None = None


class LegacyListCallsRequest(RequestModel):
    filter_criteria: LegacyCallFilterCriteria | None = None
    sort_order: Literal["ascending", "descending"] = "descending"
    limit: int = Field(default=50, ge=1, le=1000)
    pagination_key: str | None = None
