"""The call lifecycle: register, stop, end, delete, list. `registered -> ongoing -> ended | error`.

Every state change is one write transaction (the row locked on PostgreSQL), so two processes that
share a database never both end the same call, and the join deadline, stored in the row, survives
a restart of the server. The deadline is also the access token's expiry.
"""

import json
import secrets
from collections.abc import Callable
from typing import Any, Literal

from voxline.calls.tokens import AccessTokens, TokenError
from voxline.clock import Clock
from voxline.errors import BadRequest, Conflict, NotFound
from voxline.ids import new_call_id, new_id
from voxline.schemas.agent import AgentResponse
from voxline.schemas.call import (
    CallResponse,
    CallSummaryFields,
    CreateWebCallRequest,
    CreateWebCallV3Response,
    IceServer,
    LegacyListCallsRequest,
    ListCallsRequest,
    ListCallsResponse,
    RegisterCallRequest,
    RegisterCallResponse,
    UpdateCallRequest,
    UpdateLiveCallRequest,
)
from voxline.store.agents import AgentRepository
from voxline.store.calls import CALLS, CallRecord, CallRepository
from voxline.store.llms import LlmRepository
from voxline.store.objects import ObjectStore, call_prefix
from voxline.store.paging import encode_key, keyset_after

STORAGE_STRICTNESS = {"everything": 0, "everything_except_pii": 1, "basic_attributes_only": 2}
TRANSCRIPT_FIELDS = (
    "transcript",
    "transcript_object",
    "transcript_with_tool_calls",
    "scrubbed_transcript_with_tool_calls",
    "pre_session_transcript_with_tool_calls",
    "post_session_transcript_with_tool_calls",
    "scrubbed_pre_session_transcript_with_tool_calls",
    "scrubbed_post_session_transcript_with_tool_calls",
)
MAX_METADATA_BYTES = 50_000
ORPHAN_AFTER_MS = 30_000
"""A process silent this long has stopped; its ongoing calls end as error_unknown."""
ERROR_STATUS_REASONS = frozenset({"concurrency_limit_reached", "error_user_not_joined"})


class JoinRefused(Exception):
    """A client may not join: the message says why (shown to the client as a close reason)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


SENSITIVE_DATA_STORAGE = ("everything",)
"""Storage settings under which transcripts, variables and recordings are kept."""
PURGED_FIELDS = ("transcript", "transcript_object", "transcript_with_tool_calls", "collected_dynamic_variables")
BASIC_ANALYSIS = ("user_sentiment", "call_successful", "in_voicemail")
"""What a call keeps of its analysis without its transcript (opted-out storage, after retention)."""


DAY_MS = 86_400_000


def status_for(reason: str) -> str:
    """`error` for failures (every `error_*` reason, and calls refused for capacity), else `ended`."""
    return "error" if reason.startswith("error_") or reason in ERROR_STATUS_REASONS else "ended"


def _agent_storage(agent: dict[str, Any]) -> str:
    """The agent's storage setting; the older `opt_out_sensitive_data_storage: true` means basic only."""
    if agent.get("data_storage_setting"):
        return str(agent["data_storage_setting"])
    return "basic_attributes_only" if agent.get("opt_out_sensitive_data_storage") else "everything"


def _metadata_size_ok(metadata: dict[str, Any] | None) -> None:
    if metadata is not None and len(json.dumps(metadata, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise BadRequest("metadata: larger than 50 kB")


class CallService:
    def __init__(
        self,
        calls: CallRepository,
        agents: AgentRepository,
        objects: ObjectStore,
        tokens: AccessTokens,
        clock: Clock,
        *,
        join_timeout_ms: int,
        ice_servers: list[dict[str, Any]],
        llms: LlmRepository | None = None,
    ) -> None:
        self.calls = calls
        self._agents = agents
        self._llms = llms
        self._objects = objects
        self._tokens = tokens
        self._clock = clock
        self._join_timeout_ms = join_timeout_ms
        self._ice_servers = [IceServer.model_validate(s) for s in ice_servers]
        self.owner = new_id("proc", 16)
        """This process, as the owner of the calls it runs (see `heartbeat`)."""

    # --- building responses --------------------------------------------------------------------

    def access_token(self, row: CallRecord) -> str:
        return self._tokens.issue(row.call_id, row.token_nonce, row.join_deadline)

    file_links: "Callable[[CallRecord], dict[str, str]] | None" = None
    """Set by the services: the `recording_url` / `public_log_url` fields of a call's stored files."""

    def _fields(self, row: CallRecord, *, with_transcripts: bool) -> dict[str, Any]:
        data = row.data if with_transcripts else {k: v for k, v in row.data.items() if k not in TRANSCRIPT_FIELDS}
        links = self.file_links(row) if self.file_links is not None and row.config.get("files") else {}
        return {
            **data,
            **links,
            "call_type": row.call_type,
            "access_token": self.access_token(row),
            "call_id": row.call_id,
            "agent_id": row.agent_id,
            "agent_version": row.agent_version,
            "call_status": row.call_status,
            "disconnection_reason": row.disconnection_reason,
            "start_timestamp": row.start_timestamp,
            "end_timestamp": row.end_timestamp,
            "duration_ms": row.duration_ms,
            "data_storage_setting": row.data_storage_setting,
            "metadata": row.call_metadata,
            "retell_llm_dynamic_variables": row.dynamic_variables,
        }

    def to_response(self, row: CallRecord) -> CallResponse:
        return CallResponse.model_validate(self._fields(row, with_transcripts=True))

    def to_summary(self, row: CallRecord) -> CallSummaryFields:
        return CallSummaryFields.model_validate(self._fields(row, with_transcripts=False))

    # --- create --------------------------------------------------------------------------------

    async def _register(
        self,
        agent: AgentResponse,
        *,
        metadata: dict[str, Any] | None,
        dynamic_variables: dict[str, str] | None,
        storage: str | None,
        config: dict[str, Any],
    ) -> CallRecord:
        now = self._clock.now_ms()
        effective = agent.to_wire()
        override = config.get("agent_override", {}).get("agent") or {}
        effective.update(override)
        llm = await self._llm_snapshot(effective, config.get("agent_override", {}).get("retell_llm") or {})
        if llm is not None:
            config = {**config, "llm": llm}
        row = CallRecord(
            call_id=new_call_id(),
            call_type="web_call",
            agent_id=agent.agent_id,
            agent_version=agent.version,
            call_status="registered",
            disconnection_reason=None,
            created_at=now,
            start_timestamp=None,
            end_timestamp=None,
            duration_ms=None,
            join_deadline=now + self._join_timeout_ms,
            token_nonce=secrets.token_hex(8),
            user_sentiment=None,
            call_successful=None,
            in_voicemail=None,
            data_storage_setting=storage or _agent_storage(effective),
            call_metadata=metadata,
            dynamic_variables=dynamic_variables,
            data={
                k: v
                for k, v in (
                    ("agent_name", effective.get("agent_name")),
                    ("opt_in_signed_url", effective.get("opt_in_signed_url")),
                )
                if v is not None
            },
            config={**config, "agent": effective},
        )
        await self.calls.insert(row)
        return row

    async def create_web_call(self, request: CreateWebCallRequest) -> CallRecord:
        _metadata_size_ok(request.metadata)
        agent = await self._agent_for_call(request.agent_id, request.agent_version)
        storage = request.data_storage_setting
        if storage is None and request.opt_out_sensitive_data_storage:
            storage = "basic_attributes_only"
        override = request.agent_override.to_wire() if request.agent_override else {}
        if override.get("agent", {}).get("response_engine", {}).get("type") == "conversation-flow":
            raise BadRequest("agent_override.agent.response_engine: conversation-flow is not supported")
        config: dict[str, Any] = {"agent_override": override}
        if request.current_state is not None:
            config["current_state"] = request.current_state
        return await self._register(
            agent,
            metadata=request.metadata,
            dynamic_variables=request.retell_llm_dynamic_variables,
            storage=storage,
            config=config,
        )

    async def _llm_snapshot(self, agent: dict[str, Any], override: dict[str, Any]) -> dict[str, Any] | None:
        """The Retell LLM a call runs on, fixed when the call is created (later edits of the LLM
        do not change a call), with the call's `agent_override.retell_llm` applied."""
        engine = agent.get("response_engine") or {}
        if engine.get("type") != "retell-llm" or self._llms is None:
            return None
        try:
            llm = await self._llms.get(engine["llm_id"], engine.get("version"))
        except NotFound as exc:
            raise BadRequest(f"response_engine.llm_id: Retell LLM {engine['llm_id']} no longer exists") from exc
        return {**llm.to_wire(), **override}

    async def _agent_for_call(self, agent_id: str, version: int | str | None) -> AgentResponse:
        try:
            return await self._agents.resolve(agent_id, version)
        except NotFound as exc:
            raise NotFound(f"agent {agent_id} not found") from exc

    def v3_response(self, row: CallRecord) -> CreateWebCallV3Response:
        return CreateWebCallV3Response.model_validate(
            {
                **self._fields(row, with_transcripts=True),
                "expires_at": row.join_deadline,
                "ice_servers": [s.to_wire() for s in self._ice_servers],
                "transport": "gateway",
            }
        )

    async def register_call(self, request: RegisterCallRequest) -> tuple[CallRecord, RegisterCallResponse]:
        _metadata_size_ok(request.metadata)
        agent = await self._agent_for_call(request.agent_id, None)
        audio = {
            "audio_websocket_protocol": request.audio_websocket_protocol,
            "audio_encoding": request.audio_encoding,
            "sample_rate": request.sample_rate,
        }
        override: dict[str, Any] = {}
        if request.end_call_after_silence_ms is not None:
            override = {"agent": {"end_call_after_silence_ms": request.end_call_after_silence_ms}}
        row = await self._register(
            agent,
            metadata=request.metadata,
            dynamic_variables=request.retell_llm_dynamic_variables,
            storage=None,
            config={"agent_override": override, "audio": audio},
        )
        response = RegisterCallResponse(
            call_id=row.call_id,
            agent_id=row.agent_id,
            call_status="registered",
            start_timestamp=row.created_at,
            end_call_after_silence_ms=request.end_call_after_silence_ms,
            from_number=request.from_number,
            to_number=request.to_number,
            metadata=request.metadata,
            retell_llm_dynamic_variables=request.retell_llm_dynamic_variables,
            **audio,
        )
        return row, response

    # --- read ----------------------------------------------------------------------------------

    async def get(self, call_id: str) -> CallRecord:
        row = await self.calls.get(call_id)
        if row is None:
            raise NotFound(f"call {call_id} not found")
        return row

    async def list_v3(self, request: ListCallsRequest) -> ListCallsResponse:
        if request.skip is not None and request.pagination_key is not None:
            raise BadRequest("skip and pagination_key cannot be used together")
        conditions = self.calls.conditions(request.filter_criteria)
        descending = request.sort_order == "descending"
        after = (
            keyset_after(CALLS.c.created_at, CALLS.c.call_id, request.pagination_key, descending)
            if request.pagination_key
            else None
        )
        rows = await self.calls.select(
            conditions, descending=descending, limit=request.limit + 1, after=after, offset=request.skip
        )
        more = len(rows) > request.limit
        rows = rows[: request.limit]
        return ListCallsResponse(
            items=[self.to_summary(r) for r in rows],
            has_more=more,
            pagination_key=encode_key(rows[-1].created_at, rows[-1].call_id) if more and rows else None,
            total=await self.calls.count(conditions) if request.include_total else None,
        )

    async def list_legacy(self, request: LegacyListCallsRequest) -> list[CallResponse]:
        conditions = self.calls.legacy_conditions(request.filter_criteria)
        descending = request.sort_order == "descending"
        after = None
        if request.pagination_key:
            last = await self.calls.get(request.pagination_key)
            if last is None:
                raise BadRequest("pagination_key: no call with that id")
            after = keyset_after(
                CALLS.c.created_at, CALLS.c.call_id, encode_key(last.created_at, last.call_id), descending
            )
        rows = await self.calls.select(conditions, descending=descending, limit=request.limit, after=after)
        return [self.to_response(r) for r in rows]

    # --- change --------------------------------------------------------------------------------

    async def update(self, call_id: str, request: UpdateCallRequest) -> CallRecord:
        _metadata_size_ok(request.metadata)
        fields = request.model_fields_set

        def change(row: CallRecord) -> None:
            if "metadata" in fields:
                row.call_metadata = request.metadata
            if request.data_storage_setting is not None:
                if STORAGE_STRICTNESS[request.data_storage_setting] < STORAGE_STRICTNESS[row.data_storage_setting]:
                    raise BadRequest(
                        f"data_storage_setting: may only become more restrictive than {row.data_storage_setting!r}"
                    )
                row.data_storage_setting = request.data_storage_setting
            if request.custom_attributes:
                row.data = {
                    **row.data,
                    "custom_attributes": {
                        **row.data.get("custom_attributes", {}),
                        **request.custom_attributes,
                    },
                }

        row = await self.calls.modify(call_id, change)
        if row is None:
            raise NotFound(f"call {call_id} not found")
        return row

    live_stop: "Callable[[str], bool] | None" = None
    """Set by the process that runs live calls: asks a running conversation to end."""

    live_control: "Callable[..., bool] | None" = None
    """Set by the process that runs live calls: `LiveCalls.control` (update-live-call)."""

    async def update_live(self, call_id: str, request: UpdateLiveCallRequest) -> None:
        """update-live-call: storage and metadata on the row; context, a new response and variable
        overrides on the running conversation (which must run in this process)."""
        row = await self.get(call_id)
        if row.call_status != "ongoing":
            raise BadRequest(f"call {call_id} is not ongoing ({row.call_status})")
        fields = request.fields_to_override
        if fields is not None and fields.model_fields_set & {"metadata", "data_storage_setting"}:
            changes = {k: getattr(fields, k) for k in fields.model_fields_set & {"metadata", "data_storage_setting"}}
            await self.update(call_id, UpdateCallRequest(**changes))
        control = request.call_control
        overrides: dict[str, Any] | Literal[False] | None = False
        if fields is not None and "override_dynamic_variables" in fields.model_fields_set:
            overrides = fields.override_dynamic_variables
        running = self.live_control is not None and self.live_control(
            call_id,
            additional_context=control.additional_context if control else None,
            trigger_response=bool(control and control.trigger_response),
            override_dynamic_variables=overrides,
        )
        if not running:
            raise Conflict(f"call {call_id} is not running in this server process")

    async def stop(self, call_id: str) -> CallRecord:
        """End a call that has not ended: `manual_stopped`. A live conversation in this process
        ends itself (and stores its transcript); otherwise the row is ended here."""
        if self.live_stop is not None and self.live_stop(call_id):
            return await self.get(call_id)
        now = self._clock.now_ms()

        def change(row: CallRecord) -> None:
            if row.call_status not in ("registered", "ongoing"):
                raise Conflict(f"call {call_id} has already ended ({row.call_status})")
            row.end_timestamp = now
            row.duration_ms = now - row.start_timestamp if row.start_timestamp is not None else 0
            row.call_status = "ended"
            row.disconnection_reason = "manual_stopped"

        row = await self.calls.modify(call_id, change)
        if row is None:
            raise NotFound(f"call {call_id} not found")
        return row

    async def delete(self, call_id: str) -> None:
        def check(row: CallRecord) -> None:
            if row.call_status == "ongoing":
                raise Conflict(f"call {call_id} is ongoing; stop it before deleting it")

        if not await self.calls.delete(call_id, check):
            raise NotFound(f"call {call_id} not found")
        await self._objects.delete_prefix(call_prefix(call_id))

    # --- live calls -----------------------------------------------------------------------------

    async def join_with_token(self, token: str, max_concurrent: int) -> CallRecord:
        """Join the call a web-call access token names: once, before it expires."""
        try:
            claims = self._tokens.verify(token, self._clock.now_ms())
        except TokenError as exc:
            raise JoinRefused(str(exc)) from exc
        return await self._join(claims.call_id, claims.nonce, max_concurrent)

    async def join_by_call_id(self, call_id: str, max_concurrent: int) -> CallRecord:
        """Join by call id (the v1 audio WebSocket of web client 1.x, which has no token)."""
        return await self._join(call_id, None, max_concurrent)

    async def _join(self, call_id: str, nonce: str | None, max_concurrent: int) -> CallRecord:
        now = self._clock.now_ms()
        outcome: dict[str, str] = {}

        def change(row: CallRecord, ongoing: int) -> None:
            if nonce is not None and row.token_nonce != nonce:
                raise JoinRefused("access token does not match this call")
            if row.call_status != "registered":
                raise JoinRefused(f"call {call_id} is {row.call_status}; it can be joined once")
            if now >= row.join_deadline:
                raise JoinRefused(f"call {call_id} was not joined in time")
            if ongoing >= max_concurrent:
                row.call_status, row.disconnection_reason = "error", "concurrency_limit_reached"
                row.end_timestamp, row.duration_ms = now, 0
                outcome["refused"] = f"concurrency limit of {max_concurrent} ongoing calls reached"
                return
            row.call_status, row.start_timestamp, row.live_owner = "ongoing", now, self.owner

        row = await self.calls.modify_counting_ongoing(call_id, change)
        if row is None:
            raise JoinRefused(f"call {call_id} not found")
        if "refused" in outcome:
            raise JoinRefused(outcome["refused"])
        return row

    async def finish(
        self,
        call_id: str,
        reason: str,
        data: dict[str, Any] | None = None,
        internal: dict[str, Any] | None = None,
        *,
        sensitive: dict[str, Any] | None = None,
    ) -> CallRecord | None:
        """End an ongoing call with `reason` and what it produced: `data` (wire fields),
        `sensitive` (wire fields such as the transcript, kept only if the call's storage setting
        is still `everything` when it ends) and `internal` (kept for post-call work, never shown).
        A call that already ended is left as it is (returns None)."""
        now = self._clock.now_ms()

        def change(row: CallRecord) -> None:
            if row.call_status != "ongoing":
                raise _AlreadyEnded
            row.call_status, row.disconnection_reason = status_for(reason), reason
            row.end_timestamp = now
            row.duration_ms = now - (row.start_timestamp or now)
            if data:
                row.data = {**row.data, **data}
            if sensitive and row.data_storage_setting in SENSITIVE_DATA_STORAGE:
                row.data = {**row.data, **sensitive}
            days = row.config.get("agent", {}).get("data_storage_retention_days")
            if days:
                row.purge_at = now + int(days) * DAY_MS
            if internal:
                row.config = {**row.config, **internal}

        try:
            return await self.calls.modify(call_id, change)
        except _AlreadyEnded:
            return None

    async def record_files(self, call_id: str, files: dict[str, dict[str, Any]]) -> CallRecord | None:
        """The files kept for an ended call (name → content type and size)."""

        def change(row: CallRecord) -> None:
            row.config = {**row.config, "files": {**row.config.get("files", {}), **files}}

        return await self.calls.modify(call_id, change)

    async def record_analysis(self, call_id: str, analysis: dict[str, Any], notes: list[str]) -> CallRecord | None:
        """Store `call_analysis` (and its filterable columns). A call that keeps no transcript keeps
        no summary or extracted data either: only sentiment, success and voicemail."""

        def change(row: CallRecord) -> None:
            kept = analysis
            if row.data_storage_setting not in SENSITIVE_DATA_STORAGE:
                kept = {k: v for k, v in analysis.items() if k in BASIC_ANALYSIS}
            row.data = {**row.data, "call_analysis": kept}
            row.config = {**row.config, "analysis_notes": notes}
            row.user_sentiment = kept.get("user_sentiment")
            row.call_successful = kept.get("call_successful")
            row.in_voicemail = kept.get("in_voicemail")

        return await self.calls.modify(call_id, change)

    async def purge(self, call_id: str) -> CallRecord | None:
        """Retention is over: delete the transcript, variables, analysis text and files of an ended
        call; keep its basic attributes (ids, times, status, reason, latency, sentiment)."""

        def change(row: CallRecord) -> None:
            row.data = {k: v for k, v in row.data.items() if k not in PURGED_FIELDS}
            analysis = row.data.get("call_analysis")
            if analysis:
                row.data["call_analysis"] = {k: v for k, v in analysis.items() if k in BASIC_ANALYSIS}
            row.config = {k: v for k, v in row.config.items() if k not in ("files", "analysis_notes")}
            row.config["purged"] = True
            row.purge_at = None

        row = await self.calls.modify(call_id, change)
        if row is not None:
            await self._objects.delete_prefix(call_prefix(call_id))
        return row

    async def purge_expired(self) -> list[str]:
        """One clean-up round (the sweeper runs it every VOXLINE_CLEANUP_INTERVAL_MS)."""
        purged = []
        for call_id in await self.calls.due_for_purge(self._clock.now_ms()):
            if await self.purge(call_id) is not None:
                purged.append(call_id)
        return purged

    async def heartbeat(self) -> None:
        """Tell other processes (and a successor) that this one still runs its ongoing calls."""
        await self.calls.heartbeat(self.owner, self._clock.now_ms())

    async def end_orphaned(self, stale_ms: int = ORPHAN_AFTER_MS) -> list[str]:
        """End ongoing calls of processes that stopped heartbeating: nothing stays `ongoing`."""
        return await self.calls.end_orphaned(self._clock.now_ms(), stale_ms)

    async def end_unjoined(self) -> list[str]:
        """End registered calls whose join window has passed (`error_user_not_joined`)."""
        return await self.calls.end_overdue_registered(self._clock.now_ms())


class _AlreadyEnded(Exception):
    """Internal: the call ended before `finish` got to it."""
