"""The tools a Retell LLM offers the model in one state, as OpenAI function definitions.

Visible tools = `general_tools` + the current state's `tools` + one `transition_to_<state>` tool per
edge of the current state (spec D.1). Descriptions (of tools and of their properties) and `const`
values are rendered with the call's dynamic variables before the model or the tool's server sees
them. `const` properties are filled by the platform, so they are removed from the schema the model
sees (spec D.3).
"""

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Render = Callable[[Any], Any]
"""Renders `{{variables}}` in a string or in every string of a nested structure."""

TRANSITION_PREFIX = "transition_to_"
DEFAULT_EXECUTION_MESSAGE = (
    "The message you will say to callee when calling this tool. Make sure it fits into the conversation smoothly."
)
DEFAULT_DESCRIPTIONS = {
    "end_call": "End the call when the user has to leave (like says bye) or you are instructed to do so.",
    "transfer_call": "Transfer the call to a human agent or another number when asked or when instructed to.",
    "press_digit": "Press a digit on the phone keypad, for example to navigate a phone menu (IVR).",
    "extract_dynamic_variable": "Record information the user gave, as variables.",
}
DIGIT_PARAMETERS = {
    "type": "object",
    "properties": {"digit": {"type": "string", "description": "The digit to press: 0-9, * or #."}},
    "required": ["digit"],
}
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class VisibleTool:
    """One tool as the model sees it, and what it stands for."""

    name: str
    kind: str
    """The Retell tool `type` (`custom`, `end_call`, …) or `transition` for a state edge."""
    spec: Mapping[str, Any]
    """The Retell tool definition (or the edge), variables rendered."""
    function: dict[str, Any]
    """The OpenAI `tools[]` entry."""

    @property
    def target_state(self) -> str | None:
        return self.spec.get("destination_state_name") if self.kind == "transition" else None


def find_state(llm: Mapping[str, Any], name: str | None) -> Mapping[str, Any] | None:
    for state in llm.get("states") or []:
        if state.get("name") == name:
            return state  # type: ignore[no-any-return]
    return None


def visible_tools(llm: Mapping[str, Any], state_name: str | None, render: Render) -> dict[str, VisibleTool]:
    """Tools by name for the model in `state_name` (first definition wins if names repeat)."""
    strict = bool(llm.get("tool_call_strict_mode"))
    state = find_state(llm, state_name)
    tools: dict[str, VisibleTool] = {}
    for raw in [*(llm.get("general_tools") or []), *((state or {}).get("tools") or [])]:
        spec = render(copy.deepcopy(dict(raw)))
        tools.setdefault(spec["name"], _tool(spec, strict))
    for edge in (state or {}).get("edges") or []:
        spec = render(copy.deepcopy(dict(edge)))
        name = TRANSITION_PREFIX + spec["destination_state_name"]
        parameters = spec.get("parameters") or EMPTY_PARAMETERS
        tools.setdefault(
            name,
            VisibleTool(name, "transition", spec, _function(name, spec.get("description") or "", parameters, strict)),
        )
    return tools


def _tool(spec: dict[str, Any], strict: bool) -> VisibleTool:
    kind = spec.get("type", "custom")
    description = spec.get("description") or DEFAULT_DESCRIPTIONS.get(kind, "")
    if kind == "custom":
        parameters = model_parameters(spec.get("parameters"))
    elif kind == "press_digit":
        parameters = DIGIT_PARAMETERS
    elif kind == "extract_dynamic_variable":
        parameters = extraction_parameters(spec.get("variables") or [])
    elif kind in ("code", "mcp", "integration_app"):
        parameters = model_parameters(spec.get("parameters") or spec.get("input_schema"))
    else:
        parameters = EMPTY_PARAMETERS
    return VisibleTool(spec["name"], kind, spec, _function(spec["name"], description, parameters, strict))


def _function(name: str, description: str, parameters: Mapping[str, Any], strict: bool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "description": description, "parameters": dict(parameters)}
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def model_parameters(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The tool's JSON schema without `const` properties (the platform fills those)."""
    if not schema:
        return dict(EMPTY_PARAMETERS)
    result = copy.deepcopy(dict(schema))
    properties = result.get("properties") or {}
    consts = {k for k, v in properties.items() if isinstance(v, Mapping) and "const" in v}
    result["properties"] = {k: v for k, v in properties.items() if k not in consts}
    if "required" in result:
        result["required"] = [k for k in result["required"] if k not in consts]
    result.setdefault("type", "object")
    return result


def const_arguments(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """`{property: const value}` for the properties the platform fills."""
    properties = (schema or {}).get("properties") or {}
    return {k: v["const"] for k, v in properties.items() if isinstance(v, Mapping) and "const" in v}


def extraction_parameters(variables: list[Mapping[str, Any]]) -> dict[str, Any]:
    """An `extract_dynamic_variable` tool's variables (analysis items) as a JSON schema."""
    properties: dict[str, Any] = {}
    for item in variables:
        kind, description = item.get("type"), item.get("description") or ""
        if kind == "enum":
            prop: dict[str, Any] = {"type": "string", "enum": list(item.get("choices") or [])}
        elif kind == "boolean":
            prop = {"type": "boolean"}
        elif kind == "number":
            prop = {"type": "number"}
        else:
            prop = {"type": "string"}
        if description:
            prop["description"] = description
        examples = item.get("examples")
        if examples:
            prop["description"] = f"{description} Examples: {', '.join(map(str, examples))}".strip()
        properties[item["name"]] = prop
    return {"type": "object", "properties": properties}
