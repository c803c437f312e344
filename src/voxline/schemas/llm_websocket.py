"""Messages of the LLM WebSocket protocol (spec E), both directions, field for field.

Platform → LLM server messages carry `interaction_type`; LLM server → platform messages carry
`response_type`. Server messages are validated strictly (no "3" → 3 coercion): the spec says a
message with wrong types is ignored, so we must notice wrong types rather than paper over them.
`parse_server_message` tells a corrupt frame (binary, not JSON) apart from a malformed message
(JSON with wrong types or an unknown `response_type`) because the first ends the call and the
second is only logged.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from voxline.schemas.base import WireModel

__all__ = [
    "AgentConfigPatch",
    "AgentInterruptMessage",
    "CallDetailsRequest",
    "ConfigMessage",
    "CorruptPayload",
    "LlmConfig",
    "MalformedMessage",
    "MetadataMessage",
    "PingPongMessage",
    "PingPongRequest",
    "PlatformMessage",
    "ReminderRequiredRequest",
    "ResponseMessage",
    "ResponseRequiredRequest",
    "ServerMessage",
    "ToolCallInvocationMessage",
    "ToolCallResultMessage",
    "UpdateAgentMessage",
    "UpdateOnlyRequest",
    "parse_platform_message",
    "parse_server_message",
]

# --- platform → LLM server (interaction_type) ----------------------------------------------------


class PingPongRequest(WireModel):
    """Keep-alive sent every 2 s when the server asked for `auto_reconnect`."""

    interaction_type: Literal["ping_pong"] = "ping_pong"
    timestamp: int


class CallDetailsRequest(WireModel):
    """The call object, sent right after `config` when the server asked for `call_details`."""

    interaction_type: Literal["call_details"] = "call_details"
    call: dict[str, Any]


class UpdateOnlyRequest(WireModel):
    """The live transcript changed; no reply expected. `turntaking` only when the speaker changes."""

    interaction_type: Literal["update_only"] = "update_only"
    transcript: list[dict[str, Any]]
    transcript_with_tool_calls: list[dict[str, Any]] | None = None
    turntaking: Literal["agent_turn", "user_turn"] | None = None


class ResponseRequiredRequest(WireModel):
    """It may be the agent's turn: answer under `response_id` (supersedes every earlier id)."""

    interaction_type: Literal["response_required"] = "response_required"
    response_id: int
    transcript: list[dict[str, Any]]
    transcript_with_tool_calls: list[dict[str, Any]] | None = None


class ReminderRequiredRequest(WireModel):
    """The user stayed silent for `reminder_trigger_ms` after the agent spoke: nudge them."""

    interaction_type: Literal["reminder_required"] = "reminder_required"
    response_id: int
    transcript: list[dict[str, Any]]
    transcript_with_tool_calls: list[dict[str, Any]] | None = None


PlatformMessage = Annotated[
    PingPongRequest | CallDetailsRequest | UpdateOnlyRequest | ResponseRequiredRequest | ReminderRequiredRequest,
    Field(discriminator="interaction_type"),
]

# --- LLM server → platform (response_type) -------------------------------------------------------


class _ServerModel(WireModel):
    """Strict types: a wrong type makes the whole message malformed (ignored), never coerced."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=(), strict=True)


class LlmConfig(_ServerModel):
    """What the server asks of the platform for this connection."""

    auto_reconnect: bool = False
    call_details: bool = False
    transcript_with_tool_calls: bool = False


class ConfigMessage(_ServerModel):
    response_type: Literal["config"] = "config"
    config: LlmConfig = Field(default_factory=LlmConfig)


class PingPongMessage(_ServerModel):
    """The server's answer to a ping (clients echo our `timestamp`)."""

    response_type: Literal["ping_pong"] = "ping_pong"
    timestamp: int


class ResponseMessage(_ServerModel):
    """A chunk of the reply to `response_id`; the last one has `content_complete: true`."""

    response_type: Literal["response"] = "response"
    response_id: int
    content: str
    content_complete: bool
    no_interruption_allowed: bool | None = None
    end_call: bool | None = None
    transfer_number: str | None = None
    show_transferee_as_caller: bool | None = None
    digit_to_press: str | None = None


class AgentInterruptMessage(_ServerModel):
    """The server speaks now, cutting in; chunks with the same `interrupt_id` belong together."""

    response_type: Literal["agent_interrupt"] = "agent_interrupt"
    interrupt_id: int
    content: str
    content_complete: bool
    no_interruption_allowed: bool | None = None
    end_call: bool | None = None
    transfer_number: str | None = None
    digit_to_press: str | None = None


class ToolCallInvocationMessage(_ServerModel):
    """Bookkeeping only: the server called a tool (woven into `transcript_with_tool_calls`)."""

    response_type: Literal["tool_call_invocation"] = "tool_call_invocation"
    tool_call_id: str
    name: str
    arguments: str


class ToolCallResultMessage(_ServerModel):
    """Bookkeeping only: a tool's result; `successful` absent means "not reported"."""

    response_type: Literal["tool_call_result"] = "tool_call_result"
    tool_call_id: str
    content: str
    successful: bool | None = None


class AgentConfigPatch(_ServerModel):
    """The agent settings a server may change mid-call, with the agent API's ranges (spec C.1)."""

    responsiveness: Annotated[float, Field(ge=0, le=1)] | None = None
    interruption_sensitivity: Annotated[float, Field(ge=0, le=1)] | None = None
    reminder_trigger_ms: Annotated[float, Field(gt=0)] | None = None
    reminder_max_count: Annotated[int, Field(ge=0)] | None = None


class UpdateAgentMessage(_ServerModel):
    response_type: Literal["update_agent"] = "update_agent"
    agent_config: AgentConfigPatch


class MetadataMessage(_ServerModel):
    """Arbitrary JSON forwarded to the web client."""

    response_type: Literal["metadata"] = "metadata"
    metadata: Any = None


ServerMessage = Annotated[
    ConfigMessage
    | PingPongMessage
    | ResponseMessage
    | AgentInterruptMessage
    | ToolCallInvocationMessage
    | ToolCallResultMessage
    | UpdateAgentMessage
    | MetadataMessage,
    Field(discriminator="response_type"),
]

_server_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
_platform_adapter: TypeAdapter[PlatformMessage] = TypeAdapter(PlatformMessage)


class CorruptPayload(ValueError):
    """A frame that is not JSON text at all (binary, invalid UTF-8, invalid JSON): ends the call."""


class MalformedMessage(ValueError):
    """Valid JSON that is not a message we know (wrong types, unknown type): ignored, logged.

    `payload` is the decoded JSON so the log can show what arrived.
    """

    def __init__(self, detail: str, payload: Any) -> None:
        super().__init__(detail)
        self.payload = payload


def _decode(frame: str | bytes) -> Any:
    if isinstance(frame, bytes | bytearray | memoryview):
        raise CorruptPayload("binary frame")
    try:
        return json.loads(frame)
    except ValueError as exc:  # JSONDecodeError, and lone surrogates some decoders refuse
        raise CorruptPayload(f"not JSON: {exc}") from exc


def _explain(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}" for err in exc.errors()[:3]]
    return "; ".join(parts)


def parse_server_message(frame: str | bytes) -> tuple[ServerMessage, dict[str, Any]]:
    """Decode one frame from the LLM server into its model and the raw JSON object.

    A message without `response_type` is a `response` (the 2024 protocol had no such field).
    Raises `CorruptPayload` for binary/non-JSON frames and `MalformedMessage` for anything else
    that is not a valid message (including JSON that is not an object).
    """
    data = _decode(frame)
    if not isinstance(data, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(data).__name__}", data)
    candidate = data if "response_type" in data else {**data, "response_type": "response"}
    try:
        return _server_adapter.validate_python(candidate), data
    except ValidationError as exc:
        raise MalformedMessage(_explain(exc), data) from exc


def parse_platform_message(frame: str | bytes) -> PlatformMessage:
    """Decode one frame from the platform (what an LLM server receives); same error classes."""
    data = _decode(frame)
    if not isinstance(data, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(data).__name__}", data)
    try:
        return _platform_adapter.validate_python(data)
    except ValidationError as exc:
        raise MalformedMessage(_explain(exc), data) from exc
