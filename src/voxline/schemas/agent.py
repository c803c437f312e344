"""Agent wire models (spec C): the fields of create/update, the agent object, lists and versions."""

from typing import Any

from pydantic import Field, model_validator

from voxline.schemas.agent_parts import (
    CallScreeningOption,
    ContactMemoryConfig,
    CustomSttConfig,
    GuardrailConfig,
    HandbookConfig,
    IvrOption,
    PiiConfig,
    PostCallAnalysisItem,
    PostSessionTool,
    PreSessionTool,
    PronunciationDictionaryEntry,
    ResponseEngine,
    UserDtmfOptions,
    VoicemailOption,
)
from voxline.schemas.base import RequestModel, Version, WireModel
from voxline.schemas.enums import (
    AmbientSound,
    DataStorageSetting,
    DenoisingMode,
    ExpressiveEmotionTag,
    Language,
    LlmModelName,
    SttMode,
    VocabSpecialization,
    VoiceModel,
    WebhookEvent,
)


class AgentFields(WireModel):
    """Every optional agent setting, with the SDK's documented ranges."""

    agent_name: str | None = None
    voice_model: VoiceModel | None = None
    fallback_voice_ids: list[str] | None = None
    voice_temperature: float | None = Field(default=None, ge=0, le=2)
    voice_speed: float | None = Field(default=None, ge=0.5, le=2)
    volume: float | None = Field(default=None, ge=0, le=2)
    enable_dynamic_voice_speed: bool | None = None
    responsiveness: float | None = Field(default=None, ge=0, le=1)
    enable_dynamic_responsiveness: bool | None = None
    interruption_sensitivity: float | None = Field(default=None, ge=0, le=1)
    enable_backchannel: bool | None = None
    backchannel_frequency: float | None = Field(default=None, ge=0, le=1)
    backchannel_words: list[str] | None = None
    reminder_trigger_ms: float | None = Field(default=None, gt=0)
    reminder_max_count: int | None = Field(default=None, ge=0)
    ambient_sound: AmbientSound | None = None
    ambient_sound_volume: float | None = Field(default=None, ge=0, le=2)
    language: Language | list[Language] | None = None
    webhook_url: str | None = None
    webhook_events: list[WebhookEvent] | None = None
    webhook_timeout_ms: int | None = Field(default=None, ge=1)
    boosted_keywords: list[str] | None = None
    stt_mode: SttMode | None = None
    custom_stt_config: CustomSttConfig | None = None
    vocab_specialization: VocabSpecialization | None = None
    denoising_mode: DenoisingMode | None = None
    denoising_enhancement_level: float | None = Field(default=None, ge=0, le=1)
    pronunciation_dictionary: list[PronunciationDictionaryEntry] | None = None
    end_call_after_silence_ms: int | None = Field(default=None, ge=10_000)
    max_call_duration_ms: int | None = Field(default=None, ge=60_000, le=7_200_000)
    begin_message_delay_ms: int | None = Field(default=None, ge=0, le=5_000)
    ring_duration_ms: int | None = Field(default=None, ge=5_000, le=300_000)
    allow_user_dtmf: bool | None = None
    allow_dtmf_interruption: bool | None = None
    user_dtmf_options: UserDtmfOptions | None = None
    voicemail_option: VoicemailOption | None = None
    ivr_option: IvrOption | None = None
    call_screening_option: CallScreeningOption | None = None
    data_storage_setting: DataStorageSetting | None = None
    data_storage_retention_days: int | None = Field(default=None, ge=1, le=730)
    opt_in_signed_url: bool | None = None
    signed_url_expiration_ms: int | None = Field(default=None, ge=1)
    pii_config: PiiConfig | None = None
    post_call_analysis_data: list[PostCallAnalysisItem] | None = None
    post_call_analysis_model: LlmModelName | None = None
    timezone: str | None = None
    enable_dnc_detection: bool | None = None
    enable_expressive_mode: bool | None = None
    expressive_emotion_tags: list[ExpressiveEmotionTag] | None = None
    expressive_mode_prompt: str | None = None
    guardrail_config: GuardrailConfig | None = None
    handbook_config: HandbookConfig | None = None
    contact_memory_config: ContactMemoryConfig | None = None
    is_transfer_agent: bool | None = None
    pre_session_tools: list[PreSessionTool] | None = None
    post_session_tools: list[PostSessionTool] | None = None
    version_title: str | None = None
    version_description: str | None = None


class _LegacyStorageFlag(RequestModel):
    """Older SDKs send `opt_out_sensitive_data_storage`; it maps onto `data_storage_setting`."""

    opt_out_sensitive_data_storage: bool | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _map_legacy_flag(self) -> "_LegacyStorageFlag":
        if self.opt_out_sensitive_data_storage and getattr(self, "data_storage_setting", None) is None:
            self.data_storage_setting = "basic_attributes_only"  # type: ignore[attr-defined]
        return self


class AgentCreateRequest(AgentFields, _LegacyStorageFlag):
    """Body of `POST /create-agent`."""

    response_engine: ResponseEngine
    voice_id: str = Field(min_length=1)


class AgentUpdateRequest(AgentFields, _LegacyStorageFlag):
    """Body of `PATCH /update-agent/{agent_id}`: any subset; `null` clears a nullable field."""

    response_engine: ResponseEngine | None = None
    voice_id: str | None = Field(default=None, min_length=1)


class AgentResponse(AgentFields):
    """The agent object (one version of it)."""

    agent_id: str
    version: int
    last_modification_timestamp: int
    response_engine: ResponseEngine
    voice_id: str
    is_published: bool | None = None
    base_version: int | None = None
    assigned_tags: list[str] | None = None


AGENT_DEFAULTS: dict[str, Any] = {
    "voice_temperature": 1.0,
    "voice_speed": 1.0,
    "volume": 1.0,
    "enable_dynamic_voice_speed": False,
    "responsiveness": 1.0,
    "enable_dynamic_responsiveness": False,
    "interruption_sensitivity": 1.0,
    "enable_backchannel": False,
    "backchannel_frequency": 0.8,
    "reminder_trigger_ms": 10_000,
    "reminder_max_count": 1,
    "ambient_sound_volume": 1.0,
    "language": "en-US",
    "webhook_events": ["call_started", "call_ended", "call_analyzed"],
    "webhook_timeout_ms": 10_000,
    "stt_mode": "fast",
    "vocab_specialization": "general",
    "denoising_mode": "noise-cancellation",
    "end_call_after_silence_ms": 600_000,
    "max_call_duration_ms": 3_600_000,
    "begin_message_delay_ms": 0,
    "ring_duration_ms": 30_000,
    "allow_user_dtmf": True,
    "allow_dtmf_interruption": False,
    "data_storage_setting": "everything",
    "opt_in_signed_url": False,
    "signed_url_expiration_ms": 86_400_000,
    "timezone": "America/Los_Angeles",
    "enable_dnc_detection": False,
    "enable_expressive_mode": False,
}
"""Documented defaults, filled in on create so the agent object shows the values calls will use."""


class AgentListFilterString(WireModel):
    type: str = "string"
    op: str = "eq"
    value: str


class AgentListFilterBoolean(WireModel):
    type: str = "boolean"
    op: str = "eq"
    value: bool


class AgentListFilterCriteria(WireModel):
    channel: AgentListFilterString | None = None
    is_transfer_agent: AgentListFilterBoolean | None = None
    query: str | None = None


class AgentListRequest(RequestModel):
    """Body of `POST /v2/list-agents` (paging is in the query string)."""

    filter_criteria: AgentListFilterCriteria | None = None


class AgentTagInfo(WireModel):
    dynamic_variables: dict[str, str] | None = None
    version: int | None = None


class AgentListItem(WireModel):
    agent_id: str
    agent_name: str
    channel: str = "voice"
    is_suspended: bool = False
    tags: dict[str, AgentTagInfo] = Field(default_factory=dict)
    user_modified_timestamp: int
    is_transfer_agent: bool | None = None


class AgentListResponse(WireModel):
    items: list[AgentListItem]
    has_more: bool
    pagination_key: str | None = None


class AgentVersionItem(WireModel):
    is_published: bool
    last_modification_timestamp: int
    version: int
    base_version: int | None = None
    version_title: str | None = None
    version_description: str | None = None


class AgentVersionListResponse(WireModel):
    items: list[AgentVersionItem]
    has_more: bool
    pagination_key: str | None = None


class PublishAgentVersionRequest(RequestModel):
    """Body of `POST /publish-agent-version/{agent_id}`."""

    version: Version
    version_title: str | None = None
    version_description: str | None = None


class CreateAgentVersionRequest(RequestModel):
    """Body of `POST /create-agent-version/{agent_id}`."""

    base_version: Version
