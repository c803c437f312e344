"""Nested agent / LLM wire models against the official SDK (retell-sdk 6.2.13).

Three kinds of checks: realistic payloads round-trip through our models unchanged; what we emit
parses under the SDK's own response models (strict, with no unknown keys and no member falling
through to the SDK's catch-all `object`); and the key sets, required keys and literal values of
every nested model equal the SDK's. Bad input must be rejected.
"""

import copy
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from retell.types import agent_response as sdk_agent
from retell.types import llm_response as sdk_llm

from voxline.schemas import agent_parts as ap
from voxline.schemas import llm_parts as lp
from voxline.schemas.enums import KNOWN_LLM_MODELS

# --- example payloads ----------------------------------------------------------------------------

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City the caller asks about"},
        "units": {"type": "string", "enum": ["metric", "imperial"]},
        "api_key": {"type": "string", "const": "{{weather_key}}"},
    },
    "required": ["city"],
    "additionalProperties": False,
}

TOOLS: dict[str, dict[str, Any]] = {
    "end_call": {
        "type": "end_call",
        "name": "end_call",
        "description": "End the call once the caller says goodbye.",
        "custom_sip_headers": {"X-Reason": "{{end_reason}}"},
        "speak_during_execution": True,
        "execution_message_description": "Thank you for calling, goodbye!",
        "execution_message_type": "static_text",
    },
    "transfer_call": {
        "type": "transfer_call",
        "name": "transfer_to_support",
        "description": "Transfer when the caller asks for a human.",
        "transfer_destination": {"type": "predefined", "number": "+14155550100", "extension": "12#"},
        "transfer_option": {
            "type": "warm_transfer",
            "agent_detection_timeout_ms": 30000,
            "on_hold_music": "relaxing_sound",
            "ivr_option": {"type": "prompt", "prompt": "Press 2 for support."},
            "private_handoff_option": {"type": "prompt", "prompt": "Summarise the issue for the agent."},
            "public_handoff_option": {"type": "static_message", "message": "Connecting you now."},
            "show_transferee_as_caller": True,
            "transfer_ring_duration_ms": 20000,
            "enable_bridge_audio_cue": False,
            "opt_out_human_detection": False,
        },
        "custom_sip_headers": {"X-Ticket": "{{ticket_id}}"},
        "ignore_e164_validation": False,
        "speak_during_execution": True,
        "execution_message_description": "Let me connect you.",
        "execution_message_type": "prompt",
    },
    "agent_swap": {
        "type": "agent_swap",
        "name": "swap_to_billing",
        "agent_id": "agent_billing_123",
        "agent_version": 3,
        "post_call_analysis_setting": "only_destination_agent",
        "webhook_setting": "both_agents",
        "keep_current_voice": True,
        "keep_current_language": True,
        "use_swap_agent_max_duration": False,
        "description": "Hand billing questions to the billing agent.",
    },
    "press_digit": {
        "type": "press_digit",
        "name": "press_digit",
        "description": "Navigate the IVR menu.",
        "delay_ms": 1500,
    },
    "send_sms": {
        "type": "send_sms",
        "name": "send_confirmation",
        "sms_content": {"type": "predefined", "text": "Your appointment is on {{date}}."},
        "sms_destination": {"type": "phone_number", "phone_number": "+14155550123"},
        "sms_sender": {"type": "current_number"},
        "speak_after_execution": True,
        "speak_during_execution": False,
        "description": "Text the booking confirmation.",
    },
    "custom": {
        "type": "custom",
        "name": "get_weather",
        "description": "Get the weather for a city.",
        "url": "https://api.example.com/weather?day={{day}}",
        "method": "POST",
        "headers": {"Authorization": "Bearer {{token}}"},
        "query_params": {"lang": "en"},
        "parameters": WEATHER_PARAMETERS,
        "parameter_type": "json",
        "args_at_root": False,
        "response_variables": {"temperature": "data.current.temp"},
        "speak_during_execution": True,
        "speak_after_execution": True,
        "execution_message_description": "Let me check the weather.",
        "execution_message_type": "prompt",
        "timeout_ms": 120000,
        "max_retry": 2,
        "enable_typing_sound": True,
    },
    "code": {
        "type": "code",
        "name": "compute_total",
        "code": "return { total: Number(args.price) * Number(args.qty) };",
        "description": "Compute the order total.",
        "response_variables": {"order_total": "total"},
        "timeout_ms": 30000,
        "speak_after_execution": True,
    },
    "extract_dynamic_variable": {
        "type": "extract_dynamic_variable",
        "name": "extract_caller_info",
        "description": "Capture the caller's details once given.",
        "variables": [
            {
                "type": "string",
                "name": "caller_name",
                "description": "Full name",
                "examples": ["Ada Lovelace"],
            },
            {
                "type": "enum",
                "name": "plan",
                "description": "Plan",
                "choices": ["basic", "pro"],
                "required": True,
            },
            {"type": "boolean", "name": "is_existing_customer", "description": "Already a customer?"},
            {
                "type": "number",
                "name": "party_size",
                "description": "Guests",
                "conditional_prompt": "Only for reservations",
            },
        ],
        "enable_typing_sound": False,
    },
    "bridge_transfer": {
        "type": "bridge_transfer",
        "name": "bridge_transfer",
        "description": "Connect the caller when the target accepts.",
        "speak_during_execution": True,
        "execution_message_description": "Putting you through.",
    },
    "cancel_transfer": {
        "type": "cancel_transfer",
        "name": "cancel_transfer",
        "description": "Return the caller when the target declines.",
        "execution_message_type": "static_text",
    },
    "mcp": {
        "type": "mcp",
        "name": "lookup_order",
        "description": "Look up an order in the shop system.",
        "mcp_id": "mcp_shop",
        "input_schema": {"order_id": "string"},
        "response_variables": {"order_status": "status"},
        "speak_during_execution": True,
        "speak_after_execution": True,
    },
    "integration_app": {
        "type": "integration_app",
        "name": "create_hubspot_contact",
        "app_id": "app_123",
        "app_tool_template_name": "create_contact",
        "provider": "hubspot",
        "description": "Create the caller as a CRM contact.",
        "parameters": [
            {
                "type": "object",
                "properties": {"email": {"type": "string", "description": "Caller e-mail"}},
                "required": ["email"],
            }
        ],
        "output_selection": {"mode": "subset", "fields": ["id", "properties.email"]},
        "response_variables": {"contact_id": "id"},
    },
}

TOOL_CLASSES: dict[str, type[BaseModel]] = {
    "end_call": lp.EndCallTool,
    "transfer_call": lp.TransferCallTool,
    "agent_swap": lp.AgentSwapTool,
    "press_digit": lp.PressDigitTool,
    "send_sms": lp.SendSmsTool,
    "custom": lp.CustomTool,
    "code": lp.CodeTool,
    "extract_dynamic_variable": lp.ExtractDynamicVariableTool,
    "bridge_transfer": lp.BridgeTransferTool,
    "cancel_transfer": lp.CancelTransferTool,
    "mcp": lp.McpTool,
    "integration_app": lp.IntegrationAppTool,
}

COLD_TRANSFER_TOOL: dict[str, Any] = {
    "type": "transfer_call",
    "name": "transfer_to_sales",
    "transfer_destination": {"type": "inferred", "prompt": "Pick the sales number for the caller's region."},
    "transfer_option": {
        "type": "cold_transfer",
        "cold_transfer_mode": "sip_invite",
        "show_transferee_as_caller": True,
    },
}

AGENTIC_TRANSFER_TOOL: dict[str, Any] = {
    "type": "transfer_call",
    "name": "agentic_transfer",
    "transfer_destination": {"type": "predefined", "number": "{{manager_number}}"},
    "transfer_option": {
        "type": "agentic_warm_transfer",
        "agentic_transfer_config": {
            "transfer_agent": {"agent_id": "agent_transfer_1", "agent_version": "latest"},
            "action_on_timeout": "cancel_transfer",
            "transfer_timeout_ms": 30000,
        },
        "public_handoff_option": {"prompt": "Tell both sides who is joining."},
        "on_hold_music": "custom",
        "custom_on_hold_music_asset_id": "asset_42",
    },
}

TEMPLATE_SMS_TOOL: dict[str, Any] = {
    "type": "send_sms",
    "name": "send_info_form",
    "sms_content": {"type": "template", "template": "info_collection"},
    "sms_destination": {"type": "customer_number"},
    "sms_sender": {"type": "retell_long_code"},
}

STATES: list[dict[str, Any]] = [
    {
        "name": "greeting",
        "state_prompt": "Greet the caller and ask how you can help.",
        "edges": [
            {
                "destination_state_name": "booking",
                "description": "The caller wants to book an appointment.",
                "parameters": {
                    "type": "object",
                    "properties": {"service": {"type": "string", "description": "Requested service"}},
                    "required": ["service"],
                },
            },
            {"destination_state_name": "farewell", "description": "The caller has no further questions."},
        ],
        "tools": [TOOLS["press_digit"], COLD_TRANSFER_TOOL],
    },
    {
        "name": "booking",
        "state_prompt": "Book a {{service}} appointment.",
        "edges": [{"destination_state_name": "farewell", "description": "Booking done."}],
        "tools": [TOOLS["custom"], TOOLS["code"], TEMPLATE_SMS_TOOL, AGENTIC_TRANSFER_TOOL],
    },
    {"name": "farewell", "state_prompt": "Say goodbye.", "tools": [TOOLS["end_call"]]},
]

CASCADING_MODEL_CONFIG: dict[str, Any] = {
    "type": "cascading",
    "primary": {"model": "gpt-5.4", "tier": "fast"},
    "backup": {"model": "claude-4.5-haiku", "kick_in_timeout_ms": 1500, "tier": "standard"},
    "temperature": 0.2,
}
S2S_MODEL_CONFIG: dict[str, Any] = {
    "type": "s2s",
    "primary": {"model": "gpt-realtime-2.1"},
    "temperature": 0.5,
}
BACKUP_MODEL: dict[str, Any] = {
    "type": "cascading",
    "model": "gemini-3.5-flash",
    "backup_kick_in_timeout": 1500,
    "high_priority": True,
    "ultrafast": False,
}
KB_CONFIG: dict[str, Any] = {"top_k": 3, "filter_score": 0.6}
MCP_SERVER: dict[str, Any] = {
    "name": "shop",
    "url": "https://mcp.example.com/sse",
    "headers": {"Authorization": "Bearer {{mcp_token}}"},
    "query_params": {"tenant": "acme"},
    "timeout_ms": 120000,
}

CONDITION: dict[str, Any] = {
    "type": "equation",
    "operator": "&&",
    "equations": [
        {"left": "{{call_successful}}", "operator": "==", "right": "true"},
        {"left": "{{customer_email}}", "operator": "exists"},
    ],
}

PRE_SESSION_TOOLS: list[dict[str, Any]] = [
    {**TOOLS["custom"], "name": "load_customer", "depends_on": []},
    {**TOOLS["code"], "name": "greeting_name", "depends_on": ["load_customer"]},
    {**TOOLS["integration_app"], "depends_on": ["load_customer"]},
]
POST_SESSION_TOOLS: list[dict[str, Any]] = [
    {**TOOLS["custom"], "name": "save_lead", "condition": CONDITION},
    {**TOOLS["code"], "name": "score_lead", "depends_on": ["save_lead"]},
    {**TOOLS["integration_app"], "condition": CONDITION, "depends_on": ["score_lead"]},
    {**TOOLS["send_sms"], "name": "thank_you_sms", "condition": CONDITION, "depends_on": ["save_lead"]},
]

AGENT_PARTS: dict[str, Any] = {
    "response_engine": {"type": "retell-llm", "llm_id": "llm_234sdertfsdsfsdf", "version": 2},
    "pronunciation_dictionary": [
        {"word": "actually", "alphabet": "ipa", "phoneme": "\u02c8æktʃuəli"},
        {"word": "Retell", "alphabet": "cmu", "phoneme": "R IY1 T EH2 L"},
    ],
    "user_dtmf_options": {"digit_limit": 6, "termination_key": "#", "timeout_ms": 3000},
    "voicemail_option": {
        "action": {"type": "static_text", "text": "Please call us back at {{callback_number}}."},
        "detection_prompt": "A recorded greeting asking to leave a message.",
    },
    "ivr_option": {"action": {"type": "hangup"}, "detection_prompt": "An automated phone menu."},
    "call_screening_option": {
        "agent_identity": "Ava from Acme Dental",
        "call_purpose": "Appointment reminder",
    },
    "pii_config": {"mode": "post_call", "categories": ["person_name", "credit_card", "date_of_birth"]},
    "post_call_analysis_data": [
        {"type": "string", "name": "summary_for_crm", "description": "Two-line summary", "examples": ["..."]},
        {"type": "enum", "name": "outcome", "description": "Outcome", "choices": ["booked", "declined"]},
        {
            "type": "boolean",
            "name": "wants_callback",
            "description": "Asked for a callback?",
            "required": False,
        },
        {
            "type": "number",
            "name": "budget",
            "description": "Budget in USD",
            "conditional_prompt": "If stated",
        },
        {"type": "system-presets", "name": "call_summary", "description": "Summarise in one sentence."},
        {"type": "system-presets", "name": "user_sentiment", "required": False},
    ],
    "guardrail_config": {
        "input_topics": ["platform_integrity_jailbreaking"],
        "output_topics": ["harassment", "gambling", "regulated_professional_advice"],
    },
    "handbook_config": {
        "ai_disclosure": True,
        "conversational_personality": False,
        "default_personality": True,
        "echo_verification": True,
        "high_empathy": False,
        "nato_phonetic_alphabet": True,
        "natural_filler_words": False,
        "scope_boundaries": True,
        "smart_matching": True,
        "speech_normalization": True,
    },
    "contact_memory_config": {"enable_read": True, "enable_update": False},
    "custom_stt_config": {"provider": "deepgram", "endpointing_ms": 300},
    "pre_session_tools": PRE_SESSION_TOOLS,
    "post_session_tools": POST_SESSION_TOOLS,
}

# Which of our types parses each agent field; lists hold items of the given type.
AGENT_PART_TYPES: dict[str, Any] = {
    "response_engine": ap.ResponseEngine,
    "pronunciation_dictionary": list[ap.PronunciationDictionaryEntry],
    "user_dtmf_options": ap.UserDtmfOptions,
    "voicemail_option": ap.VoicemailOption,
    "ivr_option": ap.IvrOption,
    "call_screening_option": ap.CallScreeningOption,
    "pii_config": ap.PiiConfig,
    "post_call_analysis_data": list[ap.PostCallAnalysisItem],
    "guardrail_config": ap.GuardrailConfig,
    "handbook_config": ap.HandbookConfig,
    "contact_memory_config": ap.ContactMemoryConfig,
    "custom_stt_config": ap.CustomSttConfig,
    "pre_session_tools": list[ap.PreSessionTool],
    "post_session_tools": list[ap.PostSessionTool],
}

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def adapter(tp: Any) -> TypeAdapter[Any]:
    """A cached TypeAdapter (building one per call is slow)."""
    key = repr(tp)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = TypeAdapter(tp)
    return _ADAPTERS[key]


def to_wire(tp: Any, payload: Any) -> Any:
    """Parse with our models, then serialise the way the API does."""
    ta = adapter(tp)
    return ta.dump_python(ta.validate_python(payload), mode="json", exclude_none=True, by_alias=True)


# --- helpers: walk SDK parse results and compare model structures -----------------------------------


def _models_in(tp: Any) -> list[type[BaseModel]]:
    """The pydantic model classes an annotation can hold (through unions, lists, Annotated...)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    found: list[type[BaseModel]] = []
    for arg in get_args(tp):
        for model in _models_in(arg):
            if model not in found:
                found.append(model)
    return found


def _literals(tp: Any) -> set[Any]:
    """Literal values an annotation allows (not looking inside nested models)."""
    if get_origin(tp) is Literal:
        return set(get_args(tp))
    values: set[Any] = set()
    for arg in get_args(tp):
        if not isinstance(arg, str | int | float | bool):
            values |= _literals(arg)
    return values


def _tag(model: type[BaseModel]) -> tuple[str, tuple[Any, ...]]:
    """The discriminator value(s) of a union member: its `type`, else its `mode` literal."""
    for key in ("type", "mode"):
        field = model.model_fields.get(key)
        if field is not None:
            return key, tuple(sorted(_literals(field.annotation)))
    return "", ()


def _wire_fields(model: type[BaseModel]) -> dict[str, Any]:
    return {field.alias or name: field for name, field in model.model_fields.items()}


def assert_same_structure(ours: list[type[BaseModel]], sdk: list[type[BaseModel]], path: str) -> None:
    """Same members (paired by discriminator), same keys, same required keys, same literals, recursively."""
    assert len(ours) == len(sdk), f"{path}: {ours} vs {sdk}"
    if len(ours) == 1:
        pairs = [(ours[0], sdk[0])]
    else:
        our_by_tag = {_tag(m): m for m in ours}
        sdk_by_tag = {_tag(m): m for m in sdk}
        assert set(our_by_tag) == set(sdk_by_tag), path
        pairs = [(our_by_tag[tag], sdk_by_tag[tag]) for tag in sdk_by_tag]
    for our_model, sdk_model in pairs:
        where = f"{path}<{our_model.__name__}>"
        our_fields, sdk_fields = _wire_fields(our_model), _wire_fields(sdk_model)
        assert set(our_fields) == set(sdk_fields), f"{where}: {set(our_fields) ^ set(sdk_fields)}"
        our_required = {k for k, f in our_fields.items() if f.is_required()}
        sdk_required = {k for k, f in sdk_fields.items() if f.is_required()}
        assert our_required == sdk_required, where
        for key, sdk_field in sdk_fields.items():
            our_ann, sdk_ann = our_fields[key].annotation, sdk_field.annotation
            sdk_values = _literals(sdk_ann)
            if "gpt-4.1" in sdk_values:  # LLM model names: deliberately any string
                assert not _literals(our_ann), f"{where}.{key} should accept any model name"
            else:
                assert _literals(our_ann) == sdk_values, f"{where}.{key}"
            assert_same_structure(_models_in(our_ann), _models_in(sdk_ann), f"{where}.{key}")


def assert_fully_typed(obj: Any, path: str = "$") -> None:
    """No unknown keys anywhere, and no model-typed value left as a raw dict by the SDK's catch-alls."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            assert_fully_typed(item, f"{path}[{i}]")
        return
    if not isinstance(obj, BaseModel):
        return
    assert not obj.model_extra, f"{path}: keys unknown to the SDK: {obj.model_extra}"
    for name, field in type(obj).model_fields.items():
        value = getattr(obj, name)
        if value is None:
            continue
        if _models_in(field.annotation):
            items = value if isinstance(value, list) else [value]
            for item in items:
                assert not isinstance(item, dict), f"{path}.{name}: SDK did not recognise {item}"
        assert_fully_typed(value, f"{path}.{name}")


def _sdk_dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


# --- (a) realistic payloads validate and round-trip -------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TOOLS))
def test_each_tool_round_trips(kind: str) -> None:
    tool = adapter(lp.LlmTool).validate_python(TOOLS[kind])
    assert type(tool) is TOOL_CLASSES[kind]
    assert tool.to_wire() == TOOLS[kind]


def test_llm_tool_union_covers_every_sdk_tool_type() -> None:
    sdk_types = {_tag(m)[1][0] for m in _models_in(sdk_llm.GeneralTool)}
    assert sdk_types == set(TOOLS) == {_tag(m)[1][0] for m in _models_in(lp.LlmTool)}


EXAMPLES: list[tuple[str, Any, Any]] = [
    ("state-greeting", lp.State, STATES[0]),
    ("state-booking", lp.State, STATES[1]),
    ("state-edge", lp.StateEdge, STATES[0]["edges"][0]),
    ("cold-transfer", lp.LlmTool, COLD_TRANSFER_TOOL),
    ("agentic-warm-transfer", lp.LlmTool, AGENTIC_TRANSFER_TOOL),
    ("template-sms", lp.LlmTool, TEMPLATE_SMS_TOOL),
    ("model-config-cascading", lp.ModelConfig, CASCADING_MODEL_CONFIG),
    ("model-config-s2s", lp.ModelConfig, S2S_MODEL_CONFIG),
    ("backup-model", lp.BackupModel, BACKUP_MODEL),
    ("kb-config", lp.KbConfig, KB_CONFIG),
    ("mcp-server", lp.McpServer, MCP_SERVER),
    ("json-schema", lp.JsonSchemaObject, WEATHER_PARAMETERS),
    *((key, tp, AGENT_PARTS[key]) for key, tp in AGENT_PART_TYPES.items()),
    (
        "custom-llm",
        ap.ResponseEngine,
        {"type": "custom-llm", "llm_websocket_url": "wss://llm.example.com/ws"},
    ),
    ("conversation-flow", ap.ResponseEngine, {"type": "conversation-flow", "conversation_flow_id": "cf_1"}),
    (
        "voicemail-prompt",
        ap.VoicemailOption,
        {"action": {"type": "prompt", "text": "Ask them to call back."}},
    ),
    ("voicemail-hangup", ap.VoicemailOption, {"action": {"type": "hangup"}}),
    ("voicemail-bridge", ap.VoicemailOption, {"action": {"type": "bridge_transfer"}}),
    ("stt-assemblyai-max", ap.CustomSttConfig, {"provider": "assemblyai", "endpointing_ms": 3000}),
    ("pii-empty", ap.PiiConfig, {"mode": "post_call", "categories": []}),
]


@pytest.mark.parametrize(("tp", "payload"), [(tp, p) for _, tp, p in EXAMPLES], ids=[i for i, _, _ in EXAMPLES])
def test_example_payload_round_trips(tp: Any, payload: Any) -> None:
    assert to_wire(tp, payload) == payload


def test_model_config_without_type_is_cascading() -> None:
    config = adapter(lp.ModelConfig).validate_python({"primary": {"model": "gpt-5.4"}, "temperature": 0})
    assert isinstance(config, lp.CascadingModelConfig)
    assert config.to_wire() == {"primary": {"model": "gpt-5.4"}, "temperature": 0}


def test_handoff_and_sms_content_without_type_pick_the_member_by_its_key() -> None:
    option = adapter(lp.WarmTransferOption).validate_python(
        {
            "type": "warm_transfer",
            "private_handoff_option": {"message": "static"},
            "public_handoff_option": {"prompt": "dynamic"},
        }
    )
    assert isinstance(option.private_handoff_option, lp.HandoffStaticMessage)
    assert isinstance(option.public_handoff_option, lp.HandoffPrompt)
    sms = adapter(lp.LlmTool).validate_python({"type": "send_sms", "name": "s", "sms_content": {"prompt": "p"}})
    assert isinstance(sms.sms_content, lp.SmsContentInferred)


def test_unknown_keys_are_ignored_and_model_names_are_free() -> None:
    tool = adapter(lp.LlmTool).validate_python({**TOOLS["press_digit"], "legacy_flag": True})
    assert "legacy_flag" not in tool.to_wire()
    assert lp.BackupModel(type="cascading", model="my-local-llama").model == "my-local-llama"
    for name in KNOWN_LLM_MODELS:
        assert to_wire(lp.ModelConfig, {"primary": {"model": name}}) == {"primary": {"model": name}}


def test_json_schema_accepts_python_attribute_name() -> None:
    schema = lp.JsonSchemaObject(type="object", properties={}, additional_properties=True)
    assert schema.to_wire() == {"type": "object", "properties": {}, "additionalProperties": True}


def test_name_of_exactly_64_characters_is_accepted() -> None:
    assert lp.PressDigitTool(type="press_digit", name="a" * 64).name == "a" * 64
    assert lp.State(name="s-_9" * 16).name == "s-_9" * 16


# --- (a) our output validates under the SDK's own models --------------------------------------------


def test_full_llm_parses_in_sdk() -> None:
    tools = [adapter(lp.LlmTool).validate_python(t) for t in TOOLS.values()]
    states = [lp.State.model_validate(s) for s in STATES]
    wire: dict[str, Any] = {
        "llm_id": "llm_234sdertfsdsfsdf",
        "last_modification_timestamp": 1703413636133,
        "version": 1,
        "general_prompt": "You are a helpful receptionist.",
        "general_tools": [t.to_wire() for t in tools],
        "states": [s.to_wire() for s in states],
        "starting_state": "greeting",
        "model_config": to_wire(lp.ModelConfig, CASCADING_MODEL_CONFIG),
        "backup_model": lp.BackupModel.model_validate(BACKUP_MODEL).to_wire(),
        "s2s_model": "gpt-realtime",
        "kb_config": lp.KbConfig.model_validate(KB_CONFIG).to_wire(),
        "mcps": [lp.McpServer.model_validate(MCP_SERVER).to_wire()],
    }
    parsed = sdk_llm.LlmResponse.model_validate(copy.deepcopy(wire), strict=True)
    assert_fully_typed(parsed)
    assert _sdk_dump(parsed) == wire
    assert [type(t).__name__ for t in parsed.general_tools or []] == [
        m.__name__ for m in _models_in(sdk_llm.GeneralTool)
    ]
    assert isinstance(parsed.api_model_config, sdk_llm.ModelConfigCascadingModelConfig)
    assert isinstance(parsed.backup_model, sdk_llm.BackupModelBackupModelChoice)

    wire["model_config"] = to_wire(lp.ModelConfig, S2S_MODEL_CONFIG)
    parsed = sdk_llm.LlmResponse.model_validate(copy.deepcopy(wire), strict=True)
    assert isinstance(parsed.api_model_config, sdk_llm.ModelConfigS2SModelConfig)
    assert _sdk_dump(parsed) == wire


AGENT_VARIANTS: list[tuple[str, Any]] = [
    ("response_engine", {"type": "custom-llm", "llm_websocket_url": "wss://llm.example.com/ws"}),
    ("response_engine", {"type": "conversation-flow", "conversation_flow_id": "cf_1", "version": 4}),
    ("voicemail_option", {"action": {"type": "prompt", "text": "Leave a short message."}}),
    ("voicemail_option", {"action": {"type": "hangup"}}),
    ("voicemail_option", {"action": {"type": "bridge_transfer"}}),
]


def _agent_wire(parts: dict[str, Any]) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "agent_id": "agent_8f3b",
        "version": 0,
        "last_modification_timestamp": 1703413636133,
        "voice_id": "11labs-Adrian",
    }
    for key, payload in parts.items():
        wire[key] = to_wire(AGENT_PART_TYPES[key], payload)
    return wire


def test_every_agent_part_parses_in_sdk() -> None:
    wire = _agent_wire(AGENT_PARTS)
    assert {k: wire[k] for k in AGENT_PARTS} == AGENT_PARTS
    parsed = sdk_agent.AgentResponse.model_validate(copy.deepcopy(wire), strict=True)
    assert_fully_typed(parsed)
    assert _sdk_dump(parsed) == wire
    assert isinstance(parsed.response_engine, sdk_agent.ResponseEngineResponseEngineRetellLm)
    assert [type(t).__name__ for t in parsed.pre_session_tools or []] == [
        "PreSessionToolCustomTool",
        "PreSessionToolCodeTool",
        "PreSessionToolAppTool",
    ]
    assert [type(t).__name__ for t in parsed.post_session_tools or []] == [
        "PostSessionToolCustomTool",
        "PostSessionToolCodeTool",
        "PostSessionToolAppTool",
        "PostSessionToolSendSMSTool",
    ]


@pytest.mark.parametrize(("key", "payload"), AGENT_VARIANTS)
def test_agent_part_variant_parses_in_sdk(key: str, payload: Any) -> None:
    wire = _agent_wire({"response_engine": AGENT_PARTS["response_engine"], key: payload})
    parsed = sdk_agent.AgentResponse.model_validate(copy.deepcopy(wire), strict=True)
    assert_fully_typed(parsed)
    assert _sdk_dump(parsed) == wire


# --- structure parity with the SDK ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "sdk"),
    [
        (lp.LlmTool, sdk_llm.GeneralTool),
        (lp.LlmTool, sdk_llm.StateTool),
        (lp.State, sdk_llm.State),
        (lp.StateEdge, sdk_llm.StateEdge),
        (lp.ModelConfig, sdk_llm.ModelConfig),
        (lp.BackupModel, sdk_llm.BackupModel),
        (lp.KbConfig, sdk_llm.KBConfig),
        (lp.McpServer, sdk_llm.Mcp),
        (ap.ResponseEngine, sdk_agent.ResponseEngine),
        (ap.PronunciationDictionaryEntry, sdk_agent.PronunciationDictionary),
        (ap.UserDtmfOptions, sdk_agent.UserDtmfOptions),
        (ap.VoicemailOption, sdk_agent.VoicemailOption),
        (ap.IvrOption, sdk_agent.IvrOption),
        (ap.CallScreeningOption, sdk_agent.CallScreeningOption),
        (ap.PiiConfig, sdk_agent.PiiConfig),
        (ap.PostCallAnalysisItem, sdk_agent.PostCallAnalysisData),
        (ap.GuardrailConfig, sdk_agent.GuardrailConfig),
        (ap.HandbookConfig, sdk_agent.HandbookConfig),
        (ap.ContactMemoryConfig, sdk_agent.ContactMemoryConfig),
        (ap.CustomSttConfig, sdk_agent.CustomSttConfig),
        (ap.PreSessionTool, sdk_agent.PreSessionTool),
        (ap.PostSessionTool, sdk_agent.PostSessionTool),
    ],
    ids=lambda v: getattr(v, "__name__", None) or str(v)[:30],
)
def test_structure_matches_sdk(ours: Any, sdk: Any) -> None:
    assert_same_structure(_models_in(ours), _models_in(sdk), "$")


def test_agent_parts_exports() -> None:
    assert set(ap.__all__) == {
        "ResponseEngineRetellLlm",
        "ResponseEngineCustomLlm",
        "ResponseEngineConversationFlow",
        "ResponseEngine",
        "PronunciationDictionaryEntry",
        "UserDtmfOptions",
        "VoicemailOption",
        "IvrOption",
        "CallScreeningOption",
        "PiiConfig",
        "PostCallAnalysisItem",
        "GuardrailConfig",
        "HandbookConfig",
        "ContactMemoryConfig",
        "CustomSttConfig",
        "PreSessionTool",
        "PostSessionTool",
    }
    assert all(hasattr(ap, name) for name in ap.__all__)
    assert all(hasattr(lp, name) for name in lp.__all__)


# --- (b) bad input is rejected --------------------------------------------------------------------


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


BAD: list[tuple[str, Any, Any]] = [
    # wrong or missing discriminators
    ("unknown tool type", lp.LlmTool, {"type": "hang_up", "name": "bye"}),
    ("tool without type", lp.LlmTool, {"name": "bye"}),
    ("legacy cal tool", lp.LlmTool, {"type": "check_availability_cal", "name": "cal", "cal_api_key": "k"}),
    ("response engine type", ap.ResponseEngine, {"type": "retell_llm", "llm_id": "llm_1"}),
    ("analysis item type", ap.PostCallAnalysisItem, {"type": "date", "name": "d", "description": "d"}),
    ("voicemail action", ap.VoicemailOption, {"action": {"type": "beep"}}),
    ("ivr action", ap.IvrOption, {"action": {"type": "static_text"}}),
    ("transfer option", lp.LlmTool, _with(COLD_TRANSFER_TOOL, transfer_option={"type": "blind"})),
    ("transfer destination", lp.LlmTool, _with(COLD_TRANSFER_TOOL, transfer_destination={"type": "x"})),
    ("sms destination", lp.LlmTool, _with(TEMPLATE_SMS_TOOL, sms_destination={"type": "email"})),
    ("output selection", lp.LlmTool, _with(TOOLS["integration_app"], output_selection={"mode": "some"})),
    ("model config type", lp.ModelConfig, {"type": "speech", "primary": {"model": "gpt-realtime"}}),
    ("pre-session end_call", ap.PreSessionTool, TOOLS["end_call"]),
    ("pre-session send_sms", ap.PreSessionTool, TOOLS["send_sms"]),
    ("json schema type", lp.JsonSchemaObject, {"type": "array", "properties": {}}),
    # out-of-range numbers
    ("custom timeout low", lp.LlmTool, _with(TOOLS["custom"], timeout_ms=999)),
    ("custom timeout high", lp.LlmTool, _with(TOOLS["custom"], timeout_ms=600_001)),
    ("max_retry high", lp.LlmTool, _with(TOOLS["custom"], max_retry=6)),
    ("max_retry negative", lp.LlmTool, _with(TOOLS["custom"], max_retry=-1)),
    ("post-session timeout", ap.PostSessionTool, _with(TOOLS["custom"], timeout_ms=100)),
    ("delay_ms high", lp.LlmTool, _with(TOOLS["press_digit"], delay_ms=5001)),
    ("delay_ms negative", lp.LlmTool, _with(TOOLS["press_digit"], delay_ms=-1)),
    ("kick-in low", lp.BackupModel, _with(BACKUP_MODEL, backup_kick_in_timeout=299)),
    ("kick-in high", lp.BackupModel, _with(BACKUP_MODEL, backup_kick_in_timeout=60_001)),
    ("temperature high", lp.ModelConfig, _with(CASCADING_MODEL_CONFIG, temperature=1.5)),
    ("s2s temperature negative", lp.ModelConfig, _with(S2S_MODEL_CONFIG, temperature=-0.1)),
    ("deepgram endpointing", ap.CustomSttConfig, {"provider": "deepgram", "endpointing_ms": 5}),
    ("soniox endpointing", ap.CustomSttConfig, {"provider": "soniox", "endpointing_ms": 400}),
    ("assemblyai endpointing", ap.CustomSttConfig, {"provider": "assemblyai", "endpointing_ms": 3001}),
    # names and other constrained strings
    ("state name space", lp.State, {"name": "greeting state"}),
    ("state name long", lp.State, {"name": "s" * 65}),
    ("state name empty", lp.State, {"name": ""}),
    ("termination key", ap.UserDtmfOptions, {"termination_key": "##"}),
    ("termination key letter", ap.UserDtmfOptions, {"termination_key": "a"}),
    # enums and required keys
    ("s2s model", lp.ModelConfig, {"type": "s2s", "primary": {"model": "gpt-4.1"}}),
    ("model tier", lp.ModelConfig, {"primary": {"model": "gpt-5", "tier": "turbo"}}),
    ("pii category", ap.PiiConfig, {"mode": "post_call", "categories": ["religion"]}),
    ("pii mode", ap.PiiConfig, {"mode": "realtime", "categories": []}),
    ("guardrail topic", ap.GuardrailConfig, {"output_topics": ["spam"]}),
    ("preset name", ap.PostCallAnalysisItem, {"type": "system-presets", "name": "call_cost"}),
    (
        "empty choices",
        ap.PostCallAnalysisItem,
        {"type": "enum", "name": "e", "description": "d", "choices": []},
    ),
    ("swap setting", lp.LlmTool, _with(TOOLS["agent_swap"], post_call_analysis_setting="only_source_agent")),
    ("http method", lp.LlmTool, _with(TOOLS["custom"], method="HEAD")),
    ("custom without url", lp.LlmTool, {"type": "custom", "name": "x"}),
    (
        "transfer without option",
        lp.LlmTool,
        {k: v for k, v in COLD_TRANSFER_TOOL.items() if k != "transfer_option"},
    ),
    (
        "extract without description",
        lp.LlmTool,
        {"type": "extract_dynamic_variable", "name": "x", "variables": []},
    ),
    ("mcp without description", lp.LlmTool, {"type": "mcp", "name": "x"}),
    ("edge without description", lp.StateEdge, {"destination_state_name": "a"}),
    (
        "condition operator",
        ap.PostSessionTool,
        _with(TOOLS["code"], condition=_with(CONDITION, operator="and")),
    ),
    ("screening incomplete", ap.CallScreeningOption, {"agent_identity": "Ava"}),
    (
        "pronunciation alphabet",
        ap.PronunciationDictionaryEntry,
        {"word": "a", "alphabet": "x", "phoneme": "a"},
    ),
]


@pytest.mark.parametrize(("tp", "payload"), [(tp, p) for _, tp, p in BAD], ids=[label for label, _, _ in BAD])
def test_bad_input_is_rejected(tp: Any, payload: Any) -> None:
    with pytest.raises(ValidationError):
        adapter(tp).validate_python(payload)


BAD_NAMES = ["get weather", "x" * 65, "", "naïve", "semi;colon", "trailing_newline\n"]


@pytest.mark.parametrize("kind", sorted(TOOLS))
@pytest.mark.parametrize("name", BAD_NAMES, ids=["space", "65-chars", "empty", "non-ascii", "semicolon", "newline"])
def test_bad_tool_name_is_rejected(kind: str, name: str) -> None:
    with pytest.raises(ValidationError):
        adapter(lp.LlmTool).validate_python(_with(TOOLS[kind], name=name))


@pytest.mark.parametrize("name", BAD_NAMES[:2])
def test_bad_session_tool_name_is_rejected(name: str) -> None:
    with pytest.raises(ValidationError):
        adapter(ap.PreSessionTool).validate_python(_with(PRE_SESSION_TOOLS[0], name=name))
    with pytest.raises(ValidationError):
        adapter(ap.PostSessionTool).validate_python(_with(POST_SESSION_TOOLS[3], name=name))
