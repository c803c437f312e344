"""What happens to a call once it ends: store the outcome, keep the files, analyse, tell the developer.

In order, for each ended live call:

1. the row is ended at once (status, reason, latency; the transcript and collected variables only
   under `data_storage_setting: everything`, read in the same transaction that ends the call, so a
   late `update-call` to a stricter setting wins);
2. the recording (two channels and a mix) and the public log are written to the object store, and
   the row learns which files exist (again only under `everything`; the recorder's temporary files
   are always removed);
3. `transcript_updated` (final, when selected) and `call_ended` webhooks are queued;
4. in the background, the post-call analysis runs (the configured LLM endpoint, else the local
   fallback), is stored, and `call_analyzed` is queued.

Webhook URLs: the agent's `webhook_url` with the call's dynamic variables rendered, else the
server-wide `VOXLINE_WEBHOOK_URL`; events: the agent's `webhook_events`, default Retell's three.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voxline.analysis.post_call import AnalysisResult, analysis_model, analyze_call
from voxline.calls.latency import latency_from_marks
from voxline.calls.public_log import LogInputs, render_public_log
from voxline.calls.service import SENSITIVE_DATA_STORAGE, CallService
from voxline.conversation.result import ConversationResult
from voxline.errors import BadRequest
from voxline.llm.custom_llm import CustomLlmClient
from voxline.llm.interfaces import ResponseEngine, transcript_text
from voxline.llm.retell_llm import RetellLlmEngine
from voxline.llm.variables import render
from voxline.store.calls import CallRecord
from voxline.store.objects import ObjectStore, call_key

if TYPE_CHECKING:
    from voxline.conversation.recorder import CallRecorder
    from voxline.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_EVENTS = ("call_started", "call_ended", "call_analyzed")
DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000
RECORDING = "recording.wav"
RECORDING_MULTI_CHANNEL = "recording_multi_channel.wav"
PUBLIC_LOG = "public_log.txt"


@dataclass
class Captured:
    """What a live call produced, handed over when it ends."""

    result: ConversationResult | None
    llm: ResponseEngine | None
    recorder: "CallRecorder | None" = None
    errors: list[str] = field(default_factory=list)


@dataclass
class AnalysisSettings:
    """How to reach the LLM endpoint for analysis: the client (None: local analysis only) and the
    Retell-to-endpoint model name mapping."""

    chat: Any
    provider_model: Callable[[str], str]
    default_model: str


class AfterCall:
    def __init__(
        self,
        calls: CallService,
        objects: ObjectStore,
        webhooks: "WebhookDispatcher | None",
        analysis: Callable[[], AnalysisSettings],
        *,
        default_webhook_url: str | None = None,
    ) -> None:
        self._calls = calls
        self._objects = objects
        self._webhooks = webhooks
        self._analysis = analysis
        self._default_webhook_url = default_webhook_url
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- events during the call --------------------------------------------------------------------
    async def started(self, record: CallRecord) -> None:
        await self._emit(record, "call_started", self._calls.to_response(record).to_wire())

    async def transcript_updated(
        self, record: CallRecord, transcript: list[dict[str, Any]], woven: list[dict[str, Any]]
    ) -> None:
        """During the call (turn changes): the call as it is, with the live transcript."""
        if not self._wants(record, "transcript_updated") or record.data_storage_setting not in SENSITIVE_DATA_STORAGE:
            return
        call = self._calls.to_response(record).to_wire()
        call.update(
            transcript=transcript_text(transcript),
            transcript_object=transcript,
            transcript_with_tool_calls=woven,
        )
        await self._emit(record, "transcript_updated", call)

    # -- the end -----------------------------------------------------------------------------------
    async def ended(self, record: CallRecord, reason: str, captured: Captured) -> CallRecord | None:
        """Store the outcome and the files, queue the webhooks, start the analysis."""
        sensitive, internal, data = _outcome(captured)
        row = await self._calls.finish(record.call_id, reason, data, internal, sensitive=sensitive)
        keep = row is not None and row.data_storage_setting in SENSITIVE_DATA_STORAGE
        try:
            files = await self._store_files(row, captured) if row is not None and keep else {}
        finally:
            if captured.recorder is not None:
                await asyncio.to_thread(captured.recorder.discard)
        if row is None:
            return None
        if files:
            row = await self._calls.record_files(row.call_id, files) or row
        if self._wants(row, "transcript_updated") and keep:
            await self._emit(row, "transcript_updated", self._calls.to_response(row).to_wire())
        await self._emit(row, "call_ended", self._calls.to_response(row).to_wire())
        transcript = captured.result.transcript_with_tool_calls if captured.result is not None else []
        self._spawn(self._analyze(row.call_id, transcript))
        return row

    async def ended_elsewhere(self, call_id: str) -> None:
        """A call ended without a conversation in this process (nobody joined, its process died):
        the call_ended webhook and the analysis still happen."""
        row = await self._calls.get(call_id)
        await self._emit(row, "call_ended", self._calls.to_response(row).to_wire())
        self._spawn(self._analyze(call_id, row.data.get("transcript_with_tool_calls") or []))

    async def rerun_analysis(self, call_id: str) -> CallRecord:
        """`PUT /rerun-call-analysis`: analyse the stored transcript again (and send call_analyzed)."""
        row = await self._calls.get(call_id)
        if row.call_status in ("registered", "ongoing"):
            raise BadRequest(f"call {call_id} has not ended yet")
        if row.data_storage_setting not in SENSITIVE_DATA_STORAGE:
            raise BadRequest(f"call {call_id} keeps no transcript (data_storage_setting {row.data_storage_setting})")
        if row.purge_at is None and row.config.get("purged"):
            raise BadRequest(f"call {call_id} no longer has a transcript (retention period over)")
        transcript = row.data.get("transcript_with_tool_calls") or row.data.get("transcript_object") or []
        return await self._analyze(call_id, transcript)

    async def _analyze(self, call_id: str, transcript: list[dict[str, Any]]) -> CallRecord:
        row = await self._calls.get(call_id)
        agent = row.config.get("agent", {})
        settings = self._analysis()
        model = agent.get("post_call_analysis_model") or settings.default_model
        result: AnalysisResult = await analyze_call(
            transcript,
            {**agent, "post_call_analysis_model": model},
            chat=settings.chat,
            model=settings.provider_model(analysis_model({**agent, "post_call_analysis_model": model})),
            disconnection_reason=row.disconnection_reason,
        )
        for note in result.notes:
            log.debug("call %s analysis: %s", call_id, note)
        stored = await self._calls.record_analysis(call_id, result.analysis, result.notes) or row
        await self._emit(stored, "call_analyzed", self._calls.to_response(stored).to_wire())
        return stored

    async def _store_files(self, row: CallRecord, captured: Captured) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = {}
        recorder = captured.recorder
        if recorder is not None:
            duration_s = (row.duration_ms or 0) / 1000
            recording = await asyncio.to_thread(recorder.finish, duration_s)
            for name, path in ((RECORDING, recording.mixed), (RECORDING_MULTI_CHANNEL, recording.multi_channel)):
                await self._objects.put_file(call_key(row.call_id, name), path, "audio/wav")
                files[name] = {"content_type": "audio/wav", "size": path.stat().st_size}
        inputs = _log_inputs(self._calls.to_response(row).to_wire(), row, captured)
        text = await asyncio.to_thread(render_public_log, inputs)
        body = text.encode()
        await self._objects.put_bytes(call_key(row.call_id, PUBLIC_LOG), body, "text/plain; charset=utf-8")
        files[PUBLIC_LOG] = {"content_type": "text/plain; charset=utf-8", "size": len(body)}
        return files

    # -- webhooks ----------------------------------------------------------------------------------
    def _wants(self, record: CallRecord, event: str) -> bool:
        agent = record.config.get("agent", {})
        events = agent.get("webhook_events")
        return event in (DEFAULT_WEBHOOK_EVENTS if events is None else events)

    def _webhook_url(self, record: CallRecord) -> str | None:
        agent_url = record.config.get("agent", {}).get("webhook_url")
        if agent_url:
            return render(agent_url, _string_values(record.dynamic_variables))
        return self._default_webhook_url

    async def _emit(self, record: CallRecord, event: str, call: dict[str, Any]) -> None:
        if self._webhooks is None or not self._wants(record, event):
            return
        url = self._webhook_url(record)
        if not url:
            return
        timeout_ms = record.config.get("agent", {}).get("webhook_timeout_ms") or DEFAULT_WEBHOOK_TIMEOUT_MS
        if event == "call_ended":
            call.pop("call_analysis", None)
        await self._webhooks.enqueue(record.call_id, event, url, call, timeout_ms=timeout_ms)

    # -- plumbing ----------------------------------------------------------------------------------
    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("post-call work failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the analyses in progress (shutdown, tests)."""
        while self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _string_values(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {k: v if isinstance(v, str) else str(v) for k, v in (values or {}).items() if v is not None}


def _outcome(captured: Captured) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(sensitive wire fields, internal fields, other wire fields) of an ended call."""
    result, llm = captured.result, captured.llm
    internal: dict[str, Any] = {}
    if captured.errors:
        internal["end_detail"] = "; ".join(captured.errors)
    if result is None:
        return {}, internal, {}
    internal["latency_marks"] = [t.as_dict() for t in result.turns]
    internal["started_at"] = result.started_at
    if result.detail:
        internal["end_detail"] = result.detail
    if isinstance(llm, RetellLlmEngine):
        internal["current_state"] = llm.state
    rtt = llm.rtt_samples_ms if isinstance(llm, CustomLlmClient) else None
    latency = latency_from_marks(internal["latency_marks"], list(rtt) if rtt else None)
    sensitive: dict[str, Any] = {
        "transcript": transcript_text(result.transcript),
        "transcript_object": result.transcript,
        "transcript_with_tool_calls": result.transcript_with_tool_calls,
    }
    if isinstance(llm, RetellLlmEngine):
        sensitive["collected_dynamic_variables"] = llm.collected_dynamic_variables()
    return sensitive, internal, ({"latency": latency} if latency else {})


def _log_inputs(call: dict[str, Any], row: CallRecord, captured: Captured) -> LogInputs:
    result, llm = captured.result, captured.llm
    errors = list(captured.errors)
    if result is not None and result.detail:
        errors.append(result.detail)
    return LogInputs(
        call=call,
        started_at=result.started_at if result is not None else 0.0,
        turns=list(row.config.get("latency_marks") or []),
        transcript_with_tool_calls=result.transcript_with_tool_calls if result is not None else [],
        llm_messages=list(llm.message_log) if isinstance(llm, CustomLlmClient) else [],
        engine_log=list(llm.log) if isinstance(llm, RetellLlmEngine) else [],
        errors=errors,
        latency=call.get("latency"),
    )
