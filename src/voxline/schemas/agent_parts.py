"""Nested objects of the voice agent (spec C): response engine, call options, pre/post-session tools.

Mirrors `retell.types.agent_response` of retell-sdk 6.2.13 key for key so that every object we
serialise parses in the official SDK. Session tools reuse the in-call tool models of `llm_parts`
and add the keys the SDK adds for them (`depends_on`, and `condition` after the session).
"""

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from voxline.schemas.base import Version, WireModel
from voxline.schemas.llm_parts import (
    BooleanAnalysisData,
    CodeTool,
    CustomTool,
    EnumAnalysisData,
    IntegrationAppTool,
    NumberAnalysisData,
    SendSmsTool,
    StringAnalysisData,
)

__all__ = [
    "CallScreeningOption",
    "ContactMemoryConfig",
    "CustomSttConfig",
    "GuardrailConfig",
    "HandbookConfig",
    "IvrOption",
    "PiiConfig",
    "PostCallAnalysisItem",
    "PostSessionTool",
    "PreSessionTool",
    "PronunciationDictionaryEntry",
    "ResponseEngine",
    "ResponseEngineConversationFlow",
    "ResponseEngineCustomLlm",
    "ResponseEngineRetellLlm",
    "UserDtmfOptions",
    "VoicemailOption",
]

# --- response engine -----------------------------------------------------------------------------


class ResponseEngineRetellLlm(WireModel):
    """A Retell LLM; `version` pins one version of it (latest when absent)."""

    type: Literal["retell-llm"]
    llm_id: str
    version: Version | None = None


class ResponseEngineCustomLlm(WireModel):
    """The customer's own LLM, reached over the LLM WebSocket protocol (spec E)."""

    type: Literal["custom-llm"]
    llm_websocket_url: str


class ResponseEngineConversationFlow(WireModel):
    """A conversation flow; `version` pins one version of it (latest when absent)."""

    type: Literal["conversation-flow"]
    conversation_flow_id: str
    version: Version | None = None


ResponseEngine = Annotated[
    ResponseEngineRetellLlm | ResponseEngineCustomLlm | ResponseEngineConversationFlow,
    Field(discriminator="type"),
]


# --- speech --------------------------------------------------------------------------------------


class PronunciationDictionaryEntry(WireModel):
    """How the TTS should pronounce one word or phrase."""

    word: str
    alphabet: Literal["ipa", "cmu", "pinyin", "jyutping"]
    phoneme: str


SttProvider = Literal["azure", "deepgram", "soniox", "assemblyai", "muse"]

_MIN_ENDPOINTING_MS: dict[str, int] = {
    "azure": 100,
    "deepgram": 10,
    "soniox": 500,
    "assemblyai": 100,
    "muse": 100,
}
_MAX_ASSEMBLYAI_ENDPOINTING_MS = 3000


class CustomSttConfig(WireModel):
    """ASR provider and endpointing used when `stt_mode` is "custom"."""

    provider: SttProvider
    endpointing_ms: int = Field(ge=min(_MIN_ENDPOINTING_MS.values()))

    @model_validator(mode="after")
    def _check_endpointing(self) -> Self:
        """The minimum depends on the provider (SDK docstring); AssemblyAI also caps it at 3000 ms."""
        minimum = _MIN_ENDPOINTING_MS[self.provider]
        if self.endpointing_ms < minimum:
            raise ValueError(f"endpointing_ms must be at least {minimum} for provider {self.provider}")
        if self.provider == "assemblyai" and self.endpointing_ms > _MAX_ASSEMBLYAI_ENDPOINTING_MS:
            raise ValueError(f"endpointing_ms must be at most {_MAX_ASSEMBLYAI_ENDPOINTING_MS} for assemblyai")
        return self


# --- DTMF, voicemail, IVR, call screening ----------------------------------------------------------


class UserDtmfOptions(WireModel):
    """When a run of keypad digits from the user counts as one complete input."""

    digit_limit: float | None = None
    termination_key: str | None = Field(default=None, pattern=r"^[0-9#*]$")
    timeout_ms: int | None = None


class VoicemailActionPrompt(WireModel):
    """Leave a message generated from this prompt."""

    type: Literal["prompt"]
    text: str


class VoicemailActionStaticText(WireModel):
    """Leave this exact message."""

    type: Literal["static_text"]
    text: str


class VoicemailActionHangup(WireModel):
    """Hang up on voicemail."""

    type: Literal["hangup"]


class VoicemailActionBridgeTransfer(WireModel):
    """Transfer agents: bridge anyway when the target turns out to be voicemail."""

    type: Literal["bridge_transfer"]


VoicemailAction = Annotated[
    VoicemailActionPrompt | VoicemailActionStaticText | VoicemailActionHangup | VoicemailActionBridgeTransfer,
    Field(discriminator="type"),
]


class VoicemailOption(WireModel):
    """What to do when voicemail is detected in the first minutes of a phone call."""

    action: VoicemailAction
    detection_prompt: str | None = None


class IvrOptionAction(WireModel):
    """The only IVR action the SDK knows."""

    type: Literal["hangup"]


class IvrOption(WireModel):
    """What to do when an IVR is detected in the first minutes of a phone call."""

    action: IvrOptionAction
    detection_prompt: str | None = None


class CallScreeningOption(WireModel):
    """Answers the agent gives when a call-screening service asks who is calling and why."""

    agent_identity: str
    call_purpose: str


# --- privacy, analysis, guardrails, behaviour presets ----------------------------------------------

PiiCategory = Literal[
    "person_name",
    "address",
    "email",
    "phone_number",
    "ssn",
    "passport",
    "driver_license",
    "credit_card",
    "bank_account",
    "password",
    "pin",
    "medical_id",
    "date_of_birth",
    "customer_account_number",
]


class PiiConfig(WireModel):
    """Which PII to scrub from transcripts and recordings after the call (empty list: none)."""

    mode: Literal["post_call"]
    categories: list[PiiCategory]


class SystemPresetAnalysisData(WireModel):
    """Overrides the prompt of, or makes optional, one of the built-in analysis fields."""

    type: Literal["system-presets"]
    name: Literal["call_summary", "call_successful", "user_sentiment"]
    description: str | None = None
    conditional_prompt: str | None = None
    required: bool | None = None


PostCallAnalysisItem = Annotated[
    StringAnalysisData | EnumAnalysisData | BooleanAnalysisData | NumberAnalysisData | SystemPresetAnalysisData,
    Field(discriminator="type"),
]
"""One entry of `post_call_analysis_data`, selected by `type`."""

GuardrailInputTopic = Literal["platform_integrity_jailbreaking"]
GuardrailOutputTopic = Literal[
    "harassment",
    "self_harm",
    "sexual_exploitation",
    "violence",
    "defense_and_national_security",
    "illicit_and_harmful_activity",
    "gambling",
    "regulated_professional_advice",
    "child_safety_and_exploitation",
]


class GuardrailConfig(WireModel):
    """Prohibited topics: user input is answered with a placeholder, agent output is replaced."""

    input_topics: list[GuardrailInputTopic] | None = None
    output_topics: list[GuardrailOutputTopic] | None = None


class HandbookConfig(WireModel):
    """Behaviour presets added to the prompt; each key toggles one."""

    ai_disclosure: bool | None = None
    conversational_personality: bool | None = None
    default_personality: bool | None = None
    echo_verification: bool | None = None
    high_empathy: bool | None = None
    nato_phonetic_alphabet: bool | None = None
    natural_filler_words: bool | None = None
    scope_boundaries: bool | None = None
    smart_matching: bool | None = None
    speech_normalization: bool | None = None


class ContactMemoryConfig(WireModel):
    """Whether the agent reads and rewrites per-contact memory (update only changes given flags)."""

    enable_read: bool | None = None
    enable_update: bool | None = None


# --- pre/post-session tools ----------------------------------------------------------------------


class ToolConditionEquation(WireModel):
    """One comparison of a post-session gate; `right` is absent for exists / not_exist."""

    left: str
    operator: Literal["==", "!=", ">", ">=", "<", "<=", "contains", "not_contains", "exists", "not_exist"]
    right: str | None = None


class ToolCondition(WireModel):
    """Gate of a post-session tool: it runs only when the equations hold (all or any)."""

    type: Literal["equation"]
    operator: Literal["||", "&&"]
    equations: list[ToolConditionEquation]


class PreSessionCustomTool(CustomTool):
    """Custom tool run before the conversation starts."""

    depends_on: list[str] | None = None


class PreSessionCodeTool(CodeTool):
    """Code tool run before the conversation starts."""

    depends_on: list[str] | None = None


class PreSessionAppTool(IntegrationAppTool):
    """Integration tool run before the conversation starts."""

    depends_on: list[str] | None = None


PreSessionTool = Annotated[PreSessionAppTool | PreSessionCustomTool | PreSessionCodeTool, Field(discriminator="type")]
"""One entry of `pre_session_tools`, selected by `type`."""


class PostSessionCustomTool(CustomTool):
    """Custom tool run after the conversation, optionally gated."""

    depends_on: list[str] | None = None
    condition: ToolCondition | None = None


class PostSessionCodeTool(CodeTool):
    """Code tool run after the conversation, optionally gated."""

    depends_on: list[str] | None = None
    condition: ToolCondition | None = None


class PostSessionAppTool(IntegrationAppTool):
    """Integration tool run after the conversation, optionally gated."""

    depends_on: list[str] | None = None
    condition: ToolCondition | None = None


class PostSessionSendSmsTool(SendSmsTool):
    """SMS sent after the conversation, optionally gated."""

    depends_on: list[str] | None = None
    condition: ToolCondition | None = None


PostSessionTool = Annotated[
    PostSessionAppTool | PostSessionCustomTool | PostSessionCodeTool | PostSessionSendSmsTool,
    Field(discriminator="type"),
]
"""One entry of `post_session_tools`, selected by `type`."""
