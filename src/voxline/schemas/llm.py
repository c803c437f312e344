"""Retell LLM wire models (spec D): the prompt-based response engine's configuration."""

from pydantic import Field

from voxline.schemas.base import RequestModel, WireModel
from voxline.schemas.enums import LlmModelName, StartSpeaker
from voxline.schemas.llm_parts import BackupModel, KbConfig, LlmTool, McpServer, ModelConfig, S2sModel, State


class LlmOverrideFields(WireModel):
    """The LLM fields a call may override (`agent_override.retell_llm`)."""

    begin_after_user_silence_ms: int | None = Field(default=None, ge=0)
    begin_message: str | None = None
    model: LlmModelName | None = None
    s2s_model: S2sModel | None = None
    model_temperature: float | None = Field(default=None, ge=0, le=1)
    model_high_priority: bool | None = None
    model_ultrafast: bool | None = None
    llm_model_config: ModelConfig | None = Field(default=None, alias="model_config")
    backup_model: BackupModel | None = None
    start_speaker: StartSpeaker | None = None
    tool_call_strict_mode: bool | None = None
    knowledge_base_ids: list[str] | None = None
    kb_config: KbConfig | None = None


class LlmFields(LlmOverrideFields):
    general_prompt: str | None = None
    general_tools: list[LlmTool] | None = None
    states: list[State] | None = None
    starting_state: str | None = None
    default_dynamic_variables: dict[str, str] | None = None
    mcps: list[McpServer] | None = None
    is_transfer_llm: bool | None = None


class LlmCreateRequest(LlmFields, RequestModel):
    """Body of `POST /create-retell-llm`."""


class LlmUpdateRequest(LlmFields, RequestModel):
    """Body of `PATCH /update-retell-llm/{llm_id}`."""


class LlmResponse(LlmFields):
    """The Retell LLM object."""

    llm_id: str
    last_modification_timestamp: int
    version: int | None = None
    is_published: bool | None = None


class LlmListResponse(WireModel):
    items: list[LlmResponse]
    has_more: bool
    pagination_key: str | None = None


LLM_DEFAULTS: dict[str, object] = {"start_speaker": "agent", "model_temperature": 0.0}
