"""What the conversation engine asks of a response engine, and the events it gets back.

Two response engines implement `ResponseEngine`: the custom-LLM WebSocket client (the
developer's own LLM server, spec E) and, later, the built-in prompt LLM. Transcripts are passed in
Retell's wire shape (`{"role", "content", "words"}` dicts), which is what the LLM socket sends.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Utterance = dict[str, Any]
"""`{"role": "agent" | "user", "content": str, "words": [{"word", "start", "end"}]}`."""


def transcript_text(utterances: list[Utterance]) -> str:
    """Retell's plain transcript: `Agent: …\nUser: …\n`."""
    return "".join(f"{u['role'].capitalize()}: {u['content']}\n" for u in utterances if u.get("content"))


@dataclass(frozen=True)
class ResponseChunk:
    """Part of the agent's reply to request `response_id` (0 = the begin message)."""

    response_id: int
    content: str
    content_complete: bool
    end_call: bool = False
    no_interruption_allowed: bool = False
    transfer_number: str | None = None
    digit_to_press: str | None = None


@dataclass(frozen=True)
class AgentInterrupt:
    """The LLM speaks now, cutting in (`agent_interrupt`); chunks share `interrupt_id`."""

    interrupt_id: int
    content: str
    content_complete: bool
    no_interruption_allowed: bool = False
    end_call: bool = False


@dataclass(frozen=True)
class ToolCallInvocation:
    tool_call_id: str
    name: str
    arguments: str
    type: str | None = None
    """The Retell tool type (built-in LLM); absent for a custom LLM's tool calls."""


@dataclass(frozen=True)
class ToolCallResult:
    tool_call_id: str
    content: str
    successful: bool | None = None


@dataclass(frozen=True)
class AgentConfigUpdate:
    """`update_agent`: any of responsiveness, interruption_sensitivity, reminder_trigger_ms,
    reminder_max_count, already validated."""

    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetadataEvent:
    """Arbitrary JSON the LLM sends for the web client (`metadata`)."""

    metadata: Any


@dataclass(frozen=True)
class LlmEnded:
    """The response engine is gone. `reason` is the call's disconnection reason:
    agent_hangup (closed with 1000), error_llm_websocket_open / _lost_connection / _runtime /
    _corrupt_payload (custom LLM), or error_retell (the built-in LLM's provider kept failing)."""

    reason: Literal[
        "agent_hangup",
        "error_llm_websocket_open",
        "error_llm_websocket_lost_connection",
        "error_llm_websocket_runtime",
        "error_llm_websocket_corrupt_payload",
        "error_retell",
    ]
    detail: str = ""


LlmEvent = (
    ResponseChunk | AgentInterrupt | ToolCallInvocation | ToolCallResult | AgentConfigUpdate | MetadataEvent | LlmEnded
)


class ResponseEngine(Protocol):
    async def start(self, call: dict[str, Any]) -> None:
        """Connect and say hello; `call` is the call object (for `call_details`). Failure to
        connect is reported as an `LlmEnded` event, not raised."""
        ...

    def events(self) -> AsyncIterator[LlmEvent]:
        """Everything the engine sends, in order, until (and including) `LlmEnded`."""
        ...

    async def update(
        self,
        transcript: list[Utterance],
        turntaking: Literal["agent_turn", "user_turn"] | None,
        *,
        transcript_with_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """`update_only`: the live transcript changed (no reply expected). `transcript_with_tool_calls`
        is forwarded only when the LLM server asked for it in `config`."""
        ...

    async def request_response(
        self,
        response_id: int,
        transcript: list[Utterance],
        *,
        reminder: bool = False,
        transcript_with_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """`response_required` (or `reminder_required`); ids increase and supersede earlier ones."""
        ...

    async def close(self) -> None: ...
