"""Running live calls: a joined call, its conversation engine and response engine, and its end.

Transports (the audio WebSockets) hand over frames and a sink; this module builds the engine
from the call's effective agent, registers it so `stop-call` can reach it, and always writes the
end: status, disconnection reason, and the transcript (unless the call opted out of storage).
"""

import logging
from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING, Any

from voxline.calls.service import CallService
from voxline.clock import Clock
from voxline.conversation.config import ConversationConfig
from voxline.conversation.engine import Conversation
from voxline.conversation.output import OutputSink
from voxline.conversation.result import ConversationResult
from voxline.llm.custom_llm import CustomLlmClient
from voxline.llm.interfaces import ResponseEngine
from voxline.store.calls import CallRecord

if TYPE_CHECKING:
    from voxline.speech.providers import SpeechProviders

log = logging.getLogger(__name__)
TRANSCRIPT_KEEPING_STORAGE = ("everything",)


def transcript_text(utterances: list[dict[str, Any]]) -> str:
    """Retell's plain transcript: `Agent: …\\nUser: …\\n`."""
    return "".join(f"{u['role'].capitalize()}: {u['content']}\n" for u in utterances if u.get("content"))


class UnsupportedResponseEngine(Exception):
    """The agent's response engine cannot drive a live call on this server (yet)."""


def response_engine_for(agent: dict[str, Any], call_id: str) -> ResponseEngine:
    engine = agent["response_engine"]
    if engine["type"] == "custom-llm":
        return CustomLlmClient(engine["llm_websocket_url"], call_id)
    raise UnsupportedResponseEngine(f"the {engine['type']} response engine cannot run live calls on this server yet")


class LiveCalls:
    """The conversations this process runs, by call id."""

    def __init__(
        self,
        calls: CallService,
        speech: Callable[[], Any],
        clock: Clock,
    ) -> None:
        self._calls = calls
        self._speech = speech
        self._clock = clock
        self._running: dict[str, Conversation] = {}

    def stop(self, call_id: str, reason: str = "manual_stopped") -> bool:
        """Ask a running conversation to end; False when this process does not run the call."""
        conversation = self._running.get(call_id)
        if conversation is None:
            return False
        conversation.request_end(reason)
        return True

    async def run(
        self,
        record: CallRecord,
        frames: AsyncIterable[bytes],
        sink: OutputSink,
        *,
        input_sample_rate: int,
        output_sample_rate: int,
    ) -> str:
        """Run the joined call to its end and store the outcome; returns the disconnection reason."""
        agent = record.config["agent"]
        result: ConversationResult | None = None
        reason, detail = "error_unknown", ""
        try:
            speech: SpeechProviders = await self._speech()
            llm = response_engine_for(agent, record.call_id)
            conversation = Conversation(
                ConversationConfig.from_agent(
                    agent, input_sample_rate, output_sample_rate, record.dynamic_variables or {}
                ),
                vad=speech.vad,
                asr=speech.asr,
                tts=speech.tts,
                llm=llm,
                clock=self._clock,
                sink=sink,
                call=self._calls.to_response(record).to_wire(),
            )
            self._running[record.call_id] = conversation
            result = await conversation.run(frames)
            reason = result.disconnection_reason
        except UnsupportedResponseEngine as exc:
            detail = str(exc)
            log.warning("call %s: %s", record.call_id, detail)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            log.exception("call %s failed", record.call_id)
        finally:
            self._running.pop(record.call_id, None)
            data, internal = self._outcome(record, result)
            internal.setdefault("end_detail", detail)
            await self._calls.finish(record.call_id, reason, data, internal)
        return reason

    @staticmethod
    def _outcome(record: CallRecord, result: ConversationResult | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(wire fields, internal fields) to store for the ended call."""
        if result is None:
            return {}, {}
        internal = {"latency_marks": [t.as_dict() for t in result.turns], "end_detail": result.detail}
        if record.data_storage_setting not in TRANSCRIPT_KEEPING_STORAGE:
            return {}, internal
        wire = {
            "transcript": transcript_text(result.transcript),
            "transcript_object": result.transcript,
            "transcript_with_tool_calls": result.transcript_with_tool_calls,
        }
        return wire, internal
