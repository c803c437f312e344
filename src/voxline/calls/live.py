"""Running live calls: a joined call, its conversation engine and response engine, and its end.

Transports (the audio WebSockets) hand over frames and a sink; this module builds the engine
from the call's effective agent (with a recorder unless the call opted out of storage), registers
it so `stop-call` and `update-live-call` can reach it, and always hands the end to `AfterCall`:
status, disconnection reason, whatever was captured.
"""

import asyncio
import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from voxline.calls.after_call import AfterCall, Captured
from voxline.calls.service import SENSITIVE_DATA_STORAGE, CallService
from voxline.clock import Clock
from voxline.conversation.config import ConversationConfig
from voxline.conversation.engine import Conversation
from voxline.conversation.output import OutputSink
from voxline.conversation.recorder import CallRecorder
from voxline.llm.custom_llm import CustomLlmClient
from voxline.llm.interfaces import ResponseEngine
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
        after: AfterCall,
        recordings_dir: Path,
        on_call_over: Callable[[], None] = lambda: None,
    ) -> None:
        self._calls = calls
        self._speech = speech
        self._clock = clock
        self._retell_options = retell_options
        self._after = after
        self._recordings_dir = recordings_dir
        self._on_call_over = on_call_over
        self._running: dict[str, _Running] = {}
        self._pending: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> int:
        """Conversations this process is running now."""
        return len(self._running)

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
        captured = Captured(result=None, llm=None)
        reason = "error_unknown"
        try:
            await self._after.started(record)
            speech: SpeechProviders = await self._speech()
            captured.llm = response_engine_for(record, self._retell_options)
            if record.data_storage_setting in SENSITIVE_DATA_STORAGE:
                captured.recorder = CallRecorder(self._recordings_dir / record.call_id)
            conversation = Conversation(
                ConversationConfig.from_agent(
                    agent, input_sample_rate, output_sample_rate, record.dynamic_variables or {}
                ),
                vad=speech.vad,
                asr=speech.asr,
                tts=speech.tts,
                llm=captured.llm,
                clock=self._clock,
                sink=sink,
                call=self._calls.to_response(record).to_wire(),
                recorder=captured.recorder,
                on_transcript=lambda transcript, woven: self._transcript_updated(record, transcript, woven),
            )
            self._running[record.call_id] = _Running(conversation, captured.llm)
            captured.result = await conversation.run(frames)
            reason = captured.result.disconnection_reason
        except UnsupportedResponseEngine as exc:
            captured.errors.append(str(exc))
            log.warning("call %s: %s", record.call_id, exc)
        except Exception as exc:
            captured.errors.append(f"{type(exc).__name__}: {exc}")
            log.exception("call %s failed", record.call_id)
        finally:
            self._running.pop(record.call_id, None)
            await self._after.ended(record, reason, captured)
            self._on_call_over()  # housekeeping (the heap trim) once the call's buffers are freed
        return reason

    def _transcript_updated(
        self, record: CallRecord, transcript: list[dict[str, Any]], woven: list[dict[str, Any]]
    ) -> None:
        task = asyncio.ensure_future(self._after.transcript_updated(record, transcript, woven))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
