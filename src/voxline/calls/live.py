"""Running live calls: a joined call, its conversation engine and response engine, and its end.

Transports (the audio WebSockets) hand over frames and a sink; this module builds the engine
from the call's effective agent, registers it so `stop-call` can reach it, and always writes the
end: status, disconnection reason, and the transcript (unless the call opted out of storage).
"""

import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from voxline.calls.service import CallService
from voxline.clock import Clock
from voxline.conversation.config import ConversationConfig
from voxline.conversation.engine import Conversation
from voxline.conversation.output import OutputSink
from voxline.conversation.result import ConversationResult
from voxline.llm.custom_llm import CustomLlmClient
from voxline.llm.interfaces import ResponseEngine, transcript_text
from voxline.llm.retell_llm import RetellLlmEngine, RetellLlmOptions
from voxline.store.calls import CallRecord

if TYPE_CHECKING:
    from voxline.speech.providers import SpeechProviders

log = logging.getLogger(__name__)


class UnsupportedResponseEngine(Exception):
    """The agent's response engine cannot drive a live call on this server (yet)."""


def response_engine_for(record: CallRecord, retell_options: Callable[[], RetellLlmOptions]) -> ResponseEngine:
    engine = record.config["agent"]["response_engine"]
    if engine["type"] == "custom-llm":
        return CustomLlmClient(engine["llm_websocket_url"], record.call_id)
    if engine["type"] == "retell-llm" and "llm" in record.config:
        return RetellLlmEngine(
            record.config["llm"],
            record.call_id,
            retell_options(),
            dynamic_variables=record.dynamic_variables,
            starting_state=record.config.get("current_state"),
        )
    raise UnsupportedResponseEngine(f"the {engine['type']} response engine cannot run live calls on this server")


@dataclass
class _Running:
    conversation: Conversation
    llm: ResponseEngine


class LiveCalls:
    """The conversations this process runs, by call id."""

    def __init__(
        self,
        calls: CallService,
        speech: Callable[[], Any],
        clock: Clock,
        retell_options: Callable[[], RetellLlmOptions],
    ) -> None:
        self._calls = calls
        self._speech = speech
        self._clock = clock
        self._retell_options = retell_options
        self._running: dict[str, _Running] = {}

    def stop(self, call_id: str, reason: str = "manual_stopped") -> bool:
        """Ask a running conversation to end; False when this process does not run the call."""
        running = self._running.get(call_id)
        if running is None:
            return False
        running.conversation.request_end(reason)
        return True

    def control(
        self,
        call_id: str,
        *,
        additional_context: str | None = None,
        trigger_response: bool = False,
        override_dynamic_variables: dict[str, Any] | Literal[False] | None = False,
    ) -> bool:
        """update-live-call on a call this process runs (False when it runs no such call).
        `override_dynamic_variables=False` leaves them alone; None clears the overrides."""
        running = self._running.get(call_id)
        if running is None:
            return False
        if override_dynamic_variables is not False and isinstance(running.llm, RetellLlmEngine):
            running.llm.override_dynamic_variables(override_dynamic_variables)
        if additional_context:
            running.conversation.add_context(additional_context)
        if trigger_response:
            running.conversation.trigger_response()
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
        llm: ResponseEngine | None = None
        reason, detail = "error_unknown", ""
        try:
            speech: SpeechProviders = await self._speech()
            llm = response_engine_for(record, self._retell_options)
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
            self._running[record.call_id] = _Running(conversation, llm)
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
            sensitive, internal = self._outcome(result, llm)
            internal.setdefault("end_detail", detail)
            await self._calls.finish(record.call_id, reason, internal=internal, sensitive=sensitive)
        return reason

    @staticmethod
    def _outcome(
        result: ConversationResult | None, llm: ResponseEngine | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(sensitive wire fields, internal fields) to store for the ended call; the sensitive
        ones are kept only if the call's storage setting allows it when the call ends."""
        if result is None:
            return {}, {}
        internal: dict[str, Any] = {"latency_marks": [t.as_dict() for t in result.turns], "end_detail": result.detail}
        if isinstance(llm, RetellLlmEngine):
            internal["current_state"] = llm.state
        wire: dict[str, Any] = {
            "transcript": transcript_text(result.transcript),
            "transcript_object": result.transcript,
            "transcript_with_tool_calls": result.transcript_with_tool_calls,
        }
        if isinstance(llm, RetellLlmEngine):
            wire["collected_dynamic_variables"] = llm.collected_dynamic_variables()
        return wire, internal
