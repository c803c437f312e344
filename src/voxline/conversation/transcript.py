"""The live transcript in Retell's wire shape, with tool calls woven in order.

Utterances are stored once, in call order, among tool-call items; `transcript()` filters them
and `with_tool_calls()` returns everything, so both views always agree.
"""

import copy
from typing import Any

from voxline.llm.interfaces import ToolCallInvocation, ToolCallResult, Utterance

WordDict = dict[str, Any]


def word_dict(text: str, start: float, end: float) -> WordDict:
    return {"word": text, "start": round(start, 3), "end": round(end, 3)}


class TranscriptLog:
    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []

    def _visible(self) -> list[dict[str, Any]]:
        """Every item but agent utterances of which nothing has been played yet."""
        return [i for i in self._items if i["role"] != "agent" or i["content"]]

    def transcript(self) -> list[Utterance]:
        """A deep copy (safe to hand to another task) of the agent/user utterances."""
        return copy.deepcopy([i for i in self._visible() if i["role"] in ("agent", "user")])

    def with_tool_calls(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._visible())

    def last_utterance(self) -> Utterance | None:
        return next((i for i in reversed(self._visible()) if i["role"] in ("agent", "user")), None)

    def add_user(self, content: str, words: list[WordDict]) -> None:
        """A user turn; merged into the previous one if the agent has not spoken since
        (the user resumed after a pause and the pending reply was abandoned)."""
        last = self.last_utterance()
        visible = self._visible()
        if last is not None and last["role"] == "user" and visible and visible[-1] is last:
            last["content"] = f"{last['content']} {content}".strip()
            last["words"].extend(words)
            return
        self._items.append({"role": "user", "content": content, "words": words})

    def open_agent(self, response_id: int) -> Utterance:
        """An agent utterance, placed when its text arrives; unseen until some of it is played."""
        item: Utterance = {"role": "agent", "content": "", "words": [], "metadata": {"response_id": response_id}}
        self._items.append(item)
        return item

    @staticmethod
    def set_agent(item: Utterance, content: str, words: list[WordDict]) -> None:
        """Replace the agent utterance's text with what has been played so far."""
        item["content"] = content
        item["words"] = words

    def drop(self, item: Utterance) -> None:
        """Remove an agent utterance of which nothing was heard."""
        self._items = [i for i in self._items if i is not item]

    def add_tool_invocation(self, event: ToolCallInvocation) -> None:
        item = {
            "role": "tool_call_invocation",
            "tool_call_id": event.tool_call_id,
            "name": event.name,
            "arguments": event.arguments,
        }
        if event.type is not None:
            item["type"] = event.type
        self._items.append(item)

    def add_injected(self, content: str, time_sec: float) -> None:
        """Context given through update-live-call (`additional_context`)."""
        self._items.append({"role": "injected", "content": content, "time_sec": round(time_sec, 3)})

    def add_tool_result(self, event: ToolCallResult) -> None:
        item: dict[str, Any] = {"role": "tool_call_result", "tool_call_id": event.tool_call_id}
        item["content"] = event.content
        if event.successful is not None:
            item["successful"] = event.successful
        self._items.append(item)
