"""The Chat Completions messages for one reply of the built-in prompt LLM.

Built afresh for every request from the call's live transcript with tool calls (the conversation
engine's record, so what the model reads is what the caller heard):

- system: `general_prompt` + the current state's `state_prompt` (variables rendered), then context
  added through update-live-call, then short notes the history needs (interrupted turns, reminders);
- user / assistant turns in order, consecutive turns of one role merged (several chat templates of
  self-hosted servers insist on alternation);
- each tool call as an assistant message with `tool_calls` directly followed by its `tool` result
  (wherever the result sits in the transcript: a result may be recorded after words the agent spoke
  meanwhile). A call without a result gets the engine's own result when it has one, else a note
  that none is available yet: providers reject a tool call without a result.

An agent turn the caller cut off keeps only what was played, with `INTERRUPTED_MARK` appended; the
system prompt then says what the mark means.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INTERRUPTED_MARK = " [interrupted]"
INTERRUPTED_NOTE = (
    f"An agent message ending with '{INTERRUPTED_MARK.strip()}' was cut off by the user: the user heard only the "
    "text before the mark."
)
REMINDER_NOTE = (
    "The user has not said anything for a while since your last message. Say something short to re-engage them."
)
NO_RESULT_YET = "The result of this tool call is not available yet."


@dataclass
class PromptParts:
    """What the engine knows beyond the transcript."""

    system_prompt: str
    spoken: Mapping[int, str] = field(default_factory=dict)
    """The full text the engine produced for each response id (to tell whether a turn was cut)."""
    results: Mapping[str, str] = field(default_factory=dict)
    """Tool results by tool_call_id the engine has (newer than the transcript it was given)."""
    reminder: bool = False


def build_messages(history: list[Mapping[str, Any]], parts: PromptParts) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    context: list[str] = []
    interrupted = False
    results = {i["tool_call_id"]: str(i.get("content", "")) for i in history if i.get("role") == "tool_call_result"}
    results.update(parts.results)
    for item in history:
        role = item.get("role")
        if role == "user":
            _append_text(messages, "user", item.get("content") or "")
        elif role == "agent":
            text = item.get("content") or ""
            if _was_cut(item, parts.spoken):
                text += INTERRUPTED_MARK
                interrupted = True
            _append_text(messages, "assistant", text)
        elif role == "tool_call_invocation":
            _append_tool_call(messages, item)
            tool_call_id = item["tool_call_id"]
            messages.append(
                {"role": "tool", "tool_call_id": tool_call_id, "content": results.get(tool_call_id, NO_RESULT_YET)}
            )
        elif role == "injected" and item.get("content"):
            context.append(str(item["content"]))
    return [{"role": "system", "content": system_text(parts, context, interrupted)}, *messages]


def system_text(parts: PromptParts, context: list[str], interrupted: bool) -> str:
    sections = [parts.system_prompt.strip()] if parts.system_prompt.strip() else []
    if context:
        sections.append("Context added during the call:\n" + "\n".join(f"- {c}" for c in context))
    if interrupted:
        sections.append(INTERRUPTED_NOTE)
    if parts.reminder:
        sections.append(REMINDER_NOTE)
    return "\n\n".join(sections)


def _was_cut(item: Mapping[str, Any], spoken: Mapping[int, str]) -> bool:
    response_id = (item.get("metadata") or {}).get("response_id")
    full = spoken.get(response_id) if isinstance(response_id, int) else None
    if full is None:
        return False
    return len((item.get("content") or "").split()) < len(full.split())


def _append_text(messages: list[dict[str, Any]], role: str, text: str) -> None:
    if not text:
        return
    last = messages[-1] if messages else None
    if last is not None and last["role"] == role and not last.get("tool_calls"):
        last["content"] = f"{last['content']} {text}".strip()
        return
    messages.append({"role": role, "content": text})


def _append_tool_call(messages: list[dict[str, Any]], item: Mapping[str, Any]) -> None:
    call = {
        "id": item["tool_call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
