"""Latency marks per turn on one monotonic clock; reports (Retell `latency`, logs) derive from them."""

from dataclasses import asdict, dataclass

MARK_ORDER: tuple[str, ...] = (
    "user_speech_start",
    "user_speech_end",
    "asr_final",
    "turn_decision",
    "llm_request",
    "llm_first_token",
    "first_speakable_chunk",
    "tts_request",
    "tts_first_audio",
    "first_frame_sent",
    "first_audible_frame_sent",
    "interruption",
)
"""Field names in the order they normally happen (ASR may finish before or after the decision)."""


@dataclass
class TurnMarks:
    """Monotonic seconds (`Clock.monotonic()`) of each step of one turn; None = did not happen.
    `response_id` is the request this turn produced (0 = begin message)."""

    response_id: int | None = None
    reminder: bool = False
    user_speech_start: float | None = None
    user_speech_end: float | None = None
    asr_final: float | None = None
    turn_decision: float | None = None
    llm_request: float | None = None
    llm_first_token: float | None = None
    first_speakable_chunk: float | None = None
    tts_request: float | None = None
    tts_first_audio: float | None = None
    first_frame_sent: float | None = None
    first_audible_frame_sent: float | None = None
    """The first sent frame above the silence threshold: where `e2e` latency ends."""
    interruption: float | None = None

    def mark(self, name: str, t: float) -> None:
        """Record the first occurrence only: later repeats (a second sentence) are not latency."""
        if getattr(self, name) is None:
            setattr(self, name, t)

    def as_dict(self) -> dict[str, float | int | bool | None]:
        return asdict(self)
