"""What a finished conversation hands back to the call lifecycle (which stores and reports it)."""

from dataclasses import dataclass, field
from typing import Any

from voxline.conversation.marks import TurnMarks
from voxline.llm.interfaces import Utterance


@dataclass
class ConversationResult:
    disconnection_reason: str
    """A Retell `disconnection_reason` value (user_hangup, agent_hangup, inactivity, ...)."""
    transcript: list[Utterance] = field(default_factory=list)
    """Utterances with words in seconds since the call started; agent text cut to what was played."""
    transcript_with_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    turns: list[TurnMarks] = field(default_factory=list)
    """Latency marks per turn (begin message first), on the injected clock's monotonic()."""
    detail: str = ""
    """Human-readable cause for error reasons (the exception text)."""
    started_at: float = 0.0
    """The call clock's zero: `Clock.monotonic()` when the conversation started."""
    duration_s: float = 0.0
