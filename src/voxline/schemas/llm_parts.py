"""Nested objects of the Retell LLM (spec D): tools, states, model settings, MCP servers.

Mirrors `retell.types.llm_response` of retell-sdk 6.2.13 key for key so that every object we
serialise parses in the official SDK. The SDK repeats each tool class for `general_tools` and
`states[].tools`; the two are identical, so one `LlmTool` union serves both. Pieces shared with
the agent's pre/post-session tools and post-call analysis (`agent_parts`) live here too.
"""

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from voxline.schemas.base import WireModel
from voxline.schemas.enums import LlmModelName

__all__ = [
    "AgentSwapTool",
    "AgenticTransferConfig",
    "AgenticWarmTransferOption",
    "BackupModel",
    "BooleanAnalysisData",
    "BridgeTransferTool",
    "CancelTransferTool",
    "CascadingBackupModel",
    "CascadingModelConfig",
    "CascadingPrimaryModel",
    "CodeTool",
    "ColdTransferOption",
    "CustomTool",
    "DynamicVariableItem",
    "EndCallTool",
    "EnumAnalysisData",
    "ExecutionMessageType",
    "ExtractDynamicVariableTool",
    "HandoffOption",
    "HandoffPrompt",
    "HandoffStaticMessage",
    "IntegrationAppTool",
    "JsonSchemaObject",
    "KbConfig",
    "LlmTool",
    "McpServer",
    "McpTool",
    "ModelConfig",
    "ModelTier",
    "NumberAnalysisData",
    "OnHoldMusic",
    "OutputSelection",
    "OutputSelectionAll",
    "OutputSelectionSubset",
    "PressDigitTool",
    "S2sModel",
    "S2sModelConfig",
    "S2sPrimaryModel",
    "SendSmsTool",
    "SmsContent",
    "SmsContentInferred",
    "SmsContentPredefined",
    "SmsContentTemplate",
    "SmsDestination",
    "SmsDestinationCustomerNumber",
    "SmsDestinationPhoneNumber",
    "SmsSender",
    "SmsSenderCurrentNumber",
    "SmsSenderRetellLongCode",
    "State",
    "StateEdge",
    "StateName",
    "StringAnalysisData",
    "ToolName",
    "TransferAgent",
    "TransferCallTool",
    "TransferDestination",
    "TransferDestinationInferred",
    "TransferDestinationPredefined",
    "TransferOption",
    "WarmTransferIvrOption",
    "WarmTransferOption",
]

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

ToolName = Annotated[str, Field(pattern=NAME_PATTERN)]
"""Tool names become LLM function names: letters, digits, `_` and `-`, at most 64 characters."""

StateName = Annotated[str, Field(pattern=NAME_PATTERN)]
"""State names end up in `transition_to_{name}` tool names, so they share the tool-name alphabet."""

ExecutionMessageType = Literal["prompt", "static_text"]
ModelTier = Literal["standard", "fast", "ultrafast"]
OnHoldMusic = Literal["none", "relaxing_sound", "uplifting_beats", "ringtone", "custom"]
S2sModel = Literal[
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
    "gpt-realtime-2",
    "gpt-realtime-1.5",
    "gpt-realtime",
    "gpt-realtime-mini",
    "grok-voice-3.0",
]


class JsonSchemaObject(WireModel):
    """A JSON-schema `object` (tool or edge parameters); property schemas are passed through as-is."""

    type: Literal["object"]
    properties: dict[str, object]
    required: list[str] | None = None
    additional_properties: bool | None = Field(default=None, alias="additionalProperties")


# --- analysis items (extract_dynamic_variable tool, agent post_call_analysis_data) ---------------


class _AnalysisItem(WireModel):
    """Fields every extracted-variable item has; `type` picks how the value is extracted."""

    name: str
    description: str
    conditional_prompt: str | None = None
    required: bool | None = None


class StringAnalysisData(_AnalysisItem):
    """Free-text variable; `examples` teach the model the expected style."""

    type: Literal["string"]
    examples: list[str] | None = None


class EnumAnalysisData(_AnalysisItem):
    """Variable restricted to `choices` (the SDK requires a non-empty array)."""

    type: Literal["enum"]
    choices: list[str] = Field(min_length=1)


class BooleanAnalysisData(_AnalysisItem):
    """Yes/no variable."""

    type: Literal["boolean"]


class NumberAnalysisData(_AnalysisItem):
    """Numeric variable."""

    type: Literal["number"]


DynamicVariableItem = Annotated[
    StringAnalysisData | EnumAnalysisData | BooleanAnalysisData | NumberAnalysisData,
    Field(discriminator="type"),
]


# --- end_call ------------------------------------------------------------------------------------


class EndCallTool(WireModel):
    """Lets the LLM hang up; `custom_sip_headers` go on the outgoing BYE."""

    type: Literal["end_call"]
    name: ToolName
    description: str | None = None
    custom_sip_headers: dict[str, str] | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    speak_during_execution: bool | None = None


# --- transfer_call -------------------------------------------------------------------------------


class TransferDestinationPredefined(WireModel):
    """A fixed E.164 number (or `{{variable}}`), optionally followed by DTMF extension digits."""

    type: Literal["predefined"]
    number: str
    extension: str | None = None


class TransferDestinationInferred(WireModel):
    """The LLM works out the number from this prompt and the transcript."""

    type: Literal["inferred"]
    prompt: str


TransferDestination = Annotated[
    TransferDestinationPredefined | TransferDestinationInferred, Field(discriminator="type")
]


class ColdTransferOption(WireModel):
    """Hand the caller over without staying on the line."""

    type: Literal["cold_transfer"]
    cold_transfer_mode: Literal["sip_refer", "sip_invite"] | None = None
    show_transferee_as_caller: bool | None = None
    transfer_ring_duration_ms: int | None = None


class WarmTransferIvrOption(WireModel):
    """How to get through an IVR on the transfer target while detecting a human."""

    type: Literal["prompt"] | None = None
    prompt: str | None = None


class HandoffPrompt(WireModel):
    """Handoff message generated from a prompt."""

    type: Literal["prompt"] | None = None
    prompt: str | None = None


class HandoffStaticMessage(WireModel):
    """Handoff message spoken verbatim."""

    type: Literal["static_message"] | None = None
    message: str | None = None


# `type` is optional on both members (as in the SDK), so this stays a smart union: an explicit
# `type` selects the member, otherwise the member whose field is present wins.
HandoffOption = HandoffPrompt | HandoffStaticMessage


class WarmTransferOption(WireModel):
    """Agent stays on the line, optionally briefing the transfer target before bridging."""

    type: Literal["warm_transfer"]
    agent_detection_timeout_ms: float | None = None
    custom_on_hold_music_asset_id: str | None = None
    enable_bridge_audio_cue: bool | None = None
    ivr_option: WarmTransferIvrOption | None = None
    on_hold_music: OnHoldMusic | None = None
    opt_out_human_detection: bool | None = None
    private_handoff_option: HandoffOption | None = None
    public_handoff_option: HandoffOption | None = None
    show_transferee_as_caller: bool | None = None
    transfer_ring_duration_ms: int | None = None


class TransferAgent(WireModel):
    """The transfer agent (`is_transfer_agent`) that decides whether to bridge or cancel."""

    agent_id: str
    agent_version: str | int


class AgenticTransferConfig(WireModel):
    """Who mediates an agentic warm transfer and what happens when it stays undecided."""

    action_on_timeout: Literal["bridge_transfer", "cancel_transfer"] | None = None
    transfer_agent: TransferAgent | None = None
    transfer_timeout_ms: float | None = None


class AgenticWarmTransferOption(WireModel):
    """Warm transfer in which a second AI agent talks to the target first."""

    type: Literal["agentic_warm_transfer"]
    agentic_transfer_config: AgenticTransferConfig
    custom_on_hold_music_asset_id: str | None = None
    enable_bridge_audio_cue: bool | None = None
    on_hold_music: OnHoldMusic | None = None
    public_handoff_option: HandoffOption | None = None
    show_transferee_as_caller: bool | None = None
    transfer_ring_duration_ms: int | None = None


TransferOption = Annotated[
    ColdTransferOption | WarmTransferOption | AgenticWarmTransferOption, Field(discriminator="type")
]


class TransferCallTool(WireModel):
    """Transfers a phone call to another number."""

    type: Literal["transfer_call"]
    name: ToolName
    transfer_destination: TransferDestination
    transfer_option: TransferOption
    description: str | None = None
    custom_sip_headers: dict[str, str] | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    ignore_e164_validation: bool | None = None
    speak_during_execution: bool | None = None


# --- agent_swap / press_digit ----------------------------------------------------------------------


class AgentSwapTool(WireModel):
    """Continues the same call with another agent."""

    type: Literal["agent_swap"]
    name: ToolName
    agent_id: str
    post_call_analysis_setting: Literal["both_agents", "only_destination_agent"]
    agent_version: str | int | None = None
    description: str | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    keep_current_language: bool | None = None
    keep_current_voice: bool | None = None
    speak_during_execution: bool | None = None
    use_swap_agent_max_duration: bool | None = None
    webhook_setting: Literal["both_agents", "only_destination_agent", "only_source_agent"] | None = None


class PressDigitTool(WireModel):
    """Sends DTMF digits, e.g. to navigate an IVR."""

    type: Literal["press_digit"]
    name: ToolName
    description: str | None = None
    delay_ms: int | None = Field(default=None, ge=0, le=5000)


# --- send_sms ------------------------------------------------------------------------------------


class SmsContentPredefined(WireModel):
    """Fixed SMS text (may contain `{{variables}}`)."""

    type: Literal["predefined"] | None = None
    text: str | None = None


class SmsContentInferred(WireModel):
    """SMS text written by the LLM from this prompt and the transcript."""

    type: Literal["inferred"] | None = None
    prompt: str | None = None


class SmsContentTemplate(WireModel):
    """A built-in message template."""

    type: Literal["template"]
    template: Literal["info_collection"]


# Smart union for the same reason as `HandoffOption`: two members have an optional `type`.
SmsContent = SmsContentPredefined | SmsContentInferred | SmsContentTemplate


class SmsDestinationCustomerNumber(WireModel):
    """Text the other party of the call."""

    type: Literal["customer_number"]


class SmsDestinationPhoneNumber(WireModel):
    """Text a fixed number."""

    type: Literal["phone_number"]
    phone_number: str
    ignore_e164_validation: bool | None = None


SmsDestination = Annotated[SmsDestinationCustomerNumber | SmsDestinationPhoneNumber, Field(discriminator="type")]


class SmsSenderCurrentNumber(WireModel):
    """Send from the number the call uses."""

    type: Literal["current_number"]


class SmsSenderRetellLongCode(WireModel):
    """Send from the platform's shared long code."""

    type: Literal["retell_long_code"]


SmsSender = Annotated[SmsSenderCurrentNumber | SmsSenderRetellLongCode, Field(discriminator="type")]


class SendSmsTool(WireModel):
    """Sends a text message during the call."""

    type: Literal["send_sms"]
    name: ToolName
    sms_content: SmsContent
    description: str | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    sms_destination: SmsDestination | None = None
    sms_sender: SmsSender | None = None
    speak_after_execution: bool | None = None
    speak_during_execution: bool | None = None


# --- custom / code -------------------------------------------------------------------------------


class CustomTool(WireModel):
    """An HTTP call to the customer's server (spec D.3 "Custom tool HTTP contract")."""

    type: Literal["custom"]
    name: ToolName
    url: str
    description: str | None = None
    args_at_root: bool | None = None
    enable_typing_sound: bool | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    headers: dict[str, str] | None = None
    max_retry: int | None = Field(default=None, ge=0, le=5)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None = None
    parameter_type: Literal["json", "form"] | None = None
    parameters: JsonSchemaObject | None = None
    query_params: dict[str, str] | None = None
    response_variables: dict[str, str] | None = None
    speak_after_execution: bool | None = None
    speak_during_execution: bool | None = None
    timeout_ms: int | None = Field(default=None, ge=1000, le=600_000)


class CodeTool(WireModel):
    """JavaScript run in a sandbox."""

    type: Literal["code"]
    name: ToolName
    code: str
    description: str | None = None
    enable_typing_sound: bool | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    response_variables: dict[str, str] | None = None
    speak_after_execution: bool | None = None
    speak_during_execution: bool | None = None
    timeout_ms: int | None = None


# --- extract_dynamic_variable / bridge / cancel / mcp ----------------------------------------------


class ExtractDynamicVariableTool(WireModel):
    """Lets the LLM store values from the conversation as dynamic variables."""

    type: Literal["extract_dynamic_variable"]
    name: ToolName
    description: str
    variables: list[DynamicVariableItem]
    enable_typing_sound: bool | None = None


class BridgeTransferTool(WireModel):
    """Transfer agents only: connect the original caller to the transfer target."""

    type: Literal["bridge_transfer"]
    name: ToolName
    description: str | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    speak_during_execution: bool | None = None


class CancelTransferTool(WireModel):
    """Transfer agents only: give the caller back to the main agent."""

    type: Literal["cancel_transfer"]
    name: ToolName
    description: str | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    speak_during_execution: bool | None = None


class McpTool(WireModel):
    """A tool of one of the LLM's MCP servers (`mcp_id` refers to `mcps`)."""

    type: Literal["mcp"]
    name: ToolName
    description: str
    enable_typing_sound: bool | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    input_schema: dict[str, str] | None = None
    mcp_id: str | None = None
    response_variables: dict[str, str] | None = None
    speak_after_execution: bool | None = None
    speak_during_execution: bool | None = None


# --- integration_app -----------------------------------------------------------------------------


class OutputSelectionAll(WireModel):
    """Show the whole tool response; `fields` is only kept for the dashboard."""

    mode: Literal["all"]
    fields: list[str] | None = None


class OutputSelectionSubset(WireModel):
    """Show only these dot-paths of the tool response."""

    mode: Literal["subset"]
    fields: list[str]


OutputSelection = Annotated[OutputSelectionAll | OutputSelectionSubset, Field(discriminator="mode")]


class IntegrationAppTool(WireModel):
    """A catalog tool run against a connected third-party app."""

    type: Literal["integration_app"]
    name: ToolName
    app_id: str
    app_tool_template_name: str
    provider: str
    description: str | None = None
    enable_typing_sound: bool | None = None
    execution_message_description: str | None = None
    execution_message_type: ExecutionMessageType | None = None
    output_selection: OutputSelection | None = None
    parameters: list[JsonSchemaObject] | None = None
    response_variables: dict[str, str] | None = None
    speak_after_execution: bool | None = None
    speak_during_execution: bool | None = None


LlmTool = Annotated[
    EndCallTool
    | TransferCallTool
    | AgentSwapTool
    | PressDigitTool
    | SendSmsTool
    | CustomTool
    | CodeTool
    | ExtractDynamicVariableTool
    | BridgeTransferTool
    | CancelTransferTool
    | McpTool
    | IntegrationAppTool,
    Field(discriminator="type"),
]
"""Any tool of `general_tools` or `states[].tools`, selected by `type`."""


# --- states --------------------------------------------------------------------------------------


class StateEdge(WireModel):
    """A transition, offered to the LLM as the tool `transition_to_{destination_state_name}`."""

    destination_state_name: str
    description: str
    parameters: JsonSchemaObject | None = None


class State(WireModel):
    """One stage of the conversation: its prompt is appended to the general prompt."""

    name: StateName
    state_prompt: str | None = None
    edges: list[StateEdge] | None = None
    tools: list[LlmTool] | None = None


# --- model settings ------------------------------------------------------------------------------


class BackupModel(WireModel):
    """Top-level `backup_model`: a second text LLM raced against the primary (voice agents only)."""

    type: Literal["cascading"]
    model: LlmModelName
    backup_kick_in_timeout: int | None = Field(default=None, ge=300, le=60_000)
    high_priority: bool | None = None
    ultrafast: bool | None = None


class CascadingPrimaryModel(WireModel):
    """The text LLM of a cascading setup."""

    model: LlmModelName
    tier: ModelTier | None = None


class CascadingBackupModel(WireModel):
    """A text LLM that takes over when the primary is slow."""

    model: LlmModelName
    kick_in_timeout_ms: int | None = None
    tier: ModelTier | None = None


class CascadingModelConfig(WireModel):
    """Text LLM plus separate TTS; the default when `type` is omitted."""

    type: Literal["cascading"] | None = None
    primary: CascadingPrimaryModel | None = None
    backup: CascadingBackupModel | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)


class S2sPrimaryModel(WireModel):
    """The speech-to-speech model."""

    model: S2sModel


class S2sModelConfig(WireModel):
    """A speech-to-speech model instead of LLM + TTS."""

    type: Literal["s2s"] | None = None
    primary: S2sPrimaryModel | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)


def _model_config_kind(value: Any) -> str | None:
    """`type` is optional on the wire and means "cascading" when absent (SDK docstring)."""
    if isinstance(value, S2sModelConfig):
        return "s2s"
    if isinstance(value, CascadingModelConfig):
        return "cascading"
    if isinstance(value, dict):
        kind = value.get("type")
        if kind is None:
            return "cascading"
        return kind if isinstance(kind, str) else None
    return None


ModelConfig = Annotated[
    Annotated[CascadingModelConfig, Tag("cascading")] | Annotated[S2sModelConfig, Tag("s2s")],
    Discriminator(_model_config_kind),
]
"""The `model_config` object of an LLM: cascading (default) or speech-to-speech."""


# --- knowledge base / MCP ------------------------------------------------------------------------


class KbConfig(WireModel):
    """Retrieval settings for the LLM's knowledge bases."""

    top_k: int | None = None
    filter_score: float | None = None


class McpServer(WireModel):
    """An MCP server whose tools the LLM may call (`mcps[]`)."""

    name: str
    url: str
    headers: dict[str, str] | None = None
    query_params: dict[str, str] | None = None
    timeout_ms: int | None = None
