"""Per-call settings for the conversation engine, derived once from the agent's effective fields.

Everything the engine reads about timing lives here, so tests can shrink the waits instead of
sleeping, and `update_agent` (from the API or the LLM) swaps in a new frozen copy atomically.
"""

from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_BACKCHANNEL_WORDS: tuple[str, ...] = ("yeah", "uh-huh", "mm-hmm", "right", "okay")

UPDATABLE_FIELDS = frozenset(
    {
        "responsiveness",
        "interruption_sensitivity",
        "reminder_trigger_ms",
        "reminder_max_count",
        "voice_speed",
        "volume",
        "end_call_after_silence_ms",
        "max_call_duration_ms",
        "enable_backchannel",
        "backchannel_frequency",
        "backchannel_words",
    }
)
"""Agent fields that may change mid-call (`update_agent`); others are fixed at call start."""


@dataclass(frozen=True)
class ConversationConfig:
    """Agent behaviour (Retell names) plus engine timing knobs (seconds unless `_ms`)."""

    input_sample_rate: int = 16_000
    output_sample_rate: int = 24_000
    voice_id: str = ""
    voice_speed: float = 1.0
    volume: float = 1.0
    responsiveness: float = 1.0
    interruption_sensitivity: float = 1.0
    enable_backchannel: bool = False
    backchannel_frequency: float = 0.8
    backchannel_words: tuple[str, ...] = DEFAULT_BACKCHANNEL_WORDS
    reminder_trigger_ms: float = 10_000
    reminder_max_count: int = 1
    begin_message_delay_ms: int = 0
    end_call_after_silence_ms: int = 600_000
    max_call_duration_ms: int = 3_600_000
    dynamic_variables: dict[str, str] = field(default_factory=dict)

    # Engine knobs (not agent fields).
    vad_threshold: float = 0.5
    min_speech_s: float = 0.09
    """Speech shorter than this (a click) never becomes a user segment."""
    speech_stop_s: float = 0.2
    """Silence that ends a speech segment (VAD hysteresis); the turn wait comes on top."""
    turn_wait_min_s: float = 0.2
    turn_wait_max_s: float = 1.2
    incomplete_turn_extra_s: float = 0.6
    """Added once to the turn wait when the ASR text looks unfinished ("my number is 555")."""
    interrupt_min_s: float = 0.12
    """Speech needed to barge in at interruption_sensitivity 1 ..."""
    interrupt_max_s: float = 0.8
    """... and just above 0 (0 never interrupts)."""
    backchannel_after_s: float = 2.0
    """User speech (since the turn start or the last backchannel) before a backchannel at
    backchannel_frequency 1; divided by the frequency (0.8 → 2.5 s; 0 → never)."""
    pre_roll_s: float = 0.1
    frame_s: float = 0.02
    no_audio_timeout_s: float = 10.0
    asr_timeout_s: float = 10.0
    tts_timeout_s: float = 10.0
    llm_send_timeout_s: float = 5.0
    sink_timeout_s: float = 2.0
    tick_s: float = 0.01

    @property
    def turn_wait_s(self) -> float:
        """Silence after speech end before the turn is the agent's: linear in responsiveness,
        1 → turn_wait_min_s (0.2 s), 0 → turn_wait_max_s (1.2 s)."""
        r = min(max(self.responsiveness, 0.0), 1.0)
        return self.turn_wait_min_s + (1.0 - r) * (self.turn_wait_max_s - self.turn_wait_min_s)

    @property
    def interrupt_after_s(self) -> float | None:
        """Continuous user speech needed to interrupt the agent; None = never (sensitivity 0).
        Linear: 1 → interrupt_min_s (0.12 s), towards 0 → interrupt_max_s (0.8 s)."""
        s = min(max(self.interruption_sensitivity, 0.0), 1.0)
        if s == 0.0:
            return None
        return self.interrupt_min_s + (1.0 - s) * (self.interrupt_max_s - self.interrupt_min_s)

    @classmethod
    def from_agent(
        cls,
        agent: dict[str, Any],
        input_sample_rate: int,
        output_sample_rate: int,
        dynamic_variables: dict[str, str] | None = None,
        **knobs: Any,
    ) -> "ConversationConfig":
        """Build from an agent dict (API shape); missing or null fields take Retell defaults.
        `knobs` override engine timing fields (tests, settings)."""
        values: dict[str, Any] = {}
        for name in (
            "voice_id",
            "voice_speed",
            "volume",
            "responsiveness",
            "interruption_sensitivity",
            "enable_backchannel",
            "backchannel_frequency",
            "reminder_trigger_ms",
            "reminder_max_count",
            "begin_message_delay_ms",
            "end_call_after_silence_ms",
            "max_call_duration_ms",
        ):
            if agent.get(name) is not None:
                values[name] = agent[name]
        if agent.get("backchannel_words"):
            values["backchannel_words"] = tuple(agent["backchannel_words"])
        return cls(
            input_sample_rate=input_sample_rate,
            output_sample_rate=output_sample_rate,
            dynamic_variables=dict(dynamic_variables or {}),
            **values,
            **knobs,
        )

    def updated(self, fields: dict[str, Any]) -> "ConversationConfig":
        """A copy with the mid-call updatable fields in `fields` applied (others ignored)."""
        changes = {k: v for k, v in fields.items() if k in UPDATABLE_FIELDS and v is not None}
        if "backchannel_words" in changes:
            changes["backchannel_words"] = tuple(changes["backchannel_words"])
        return replace(self, **changes)
