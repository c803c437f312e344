"""Transcript items of the call object (spec B.4)."""

from typing import Annotated, Literal

from pydantic import Field

from voxline.schemas.base import WireModel


class Word(WireModel):
    word: str | None = None
    start: float | None = None
    end: float | None = None


class BackupModelUsed(WireModel):
    backup_model: str
    model: str
    primary_model: str
    reason: Literal["primary_failed", "preference_expired", "first_usable"]
    selection_latency_ms: float
    backup_ready_ms: float | None = None
    primary_ready_ms: float | None = None


class UtteranceMetadata(WireModel):
    response_id: int | None = None
    interrupt_id: int | None = None
    is_backchannel: bool | None = None
    backup_model_used: BackupModelUsed | None = None


class Utterance(WireModel):
    role: Literal["agent", "user", "transfer_target"]
    content: str
    words: list[Word] = Field(default_factory=list)
    metadata: UtteranceMetadata | None = None


class ToolCallInvocationMetadata(WireModel):
    backup_model_used: BackupModelUsed | None = None


class ToolCallInvocation(WireModel):
    role: Literal["tool_call_invocation"]
    tool_call_id: str
    name: str
    arguments: str
    type: str | None = None
    thought_signature: str | None = None
    metadata: ToolCallInvocationMetadata | None = None


class ToolCallResult(WireModel):
    role: Literal["tool_call_result"]
    tool_call_id: str
    content: str
    successful: bool | None = None


class NodeTransition(WireModel):
    role: Literal["node_transition"]
    former_node_id: str
    former_node_name: str
    new_node_id: str
    new_node_name: str
    transition_type: Literal["global", "global_go_back", "interrupt_go_back", "normal"] | None = None


class Dtmf(WireModel):
    role: Literal["dtmf"]
    digit: str


class SmsMultimedia(WireModel):
    url: str
    summary: str | None = None


class Sms(WireModel):
    role: Literal["sms"]
    content: str
    time_sec: float
    multimedia: list[SmsMultimedia] | None = None


class Injected(WireModel):
    role: Literal["injected"]
    content: str
    time_sec: float


TranscriptItem = Annotated[
    Utterance | ToolCallInvocation | ToolCallResult | NodeTransition | Dtmf | Sms | Injected,
    Field(discriminator="role"),
]
