"""The built-in prompt LLM (`response_engine.type = "retell-llm"`): a `ResponseEngine` that writes
the agent's replies with any OpenAI-compatible Chat Completions endpoint.

One engine per call. Each `request_response` starts a reply task (a newer request cancels the
older one): build the messages (`retell_prompt`), stream a completion, pass text on as
`ResponseChunk`s as it arrives (the engine's playback cuts it into clauses for TTS), run the tool
calls the model asked for, and go round again while a tool wants the model to speak after it.

Failures: a stream that fails before it produced anything is tried once more; a stream that dies
after speaking ends that turn with what was said. Two failed attempts in a row (in one turn or
across turns) end the call with `error_retell` and the provider's error as the detail. Custom tool
requests are not cancelled by an interruption (spec D.3): they run as their own tasks and their
results are recorded when they arrive.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from voxline.llm.custom_tool import run_custom_tool
from voxline.llm.interfaces import (
    LlmEnded,
    LlmEvent,
    ResponseChunk,
    ToolCallInvocation,
    ToolCallResult,
    Utterance,
    transcript_text,
)
from voxline.llm.openai_chat import ChatRequest, ProviderError, StreamDone, TextDelta, ToolCallRequest
from voxline.llm.retell_prompt import PromptParts, build_messages
from voxline.llm.retell_tools import DEFAULT_EXECUTION_MESSAGE, VisibleTool, const_arguments, find_state, visible_tools
from voxline.llm.variables import SystemVariables, render, render_deep, resolve_variables, to_variable_value

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4.1"
MAX_TOOL_ROUNDS = 6
FAILURES_TO_END = 2
EXECUTION_LINE_INSTRUCTION = (
    "You are about to run the tool `{name}`. Say one short sentence to the user now, while it runs. "
    "Instruction for that sentence: {description} Reply with the sentence only."
)


class ChatProvider(Protocol):
    """What the engine needs of a Chat Completions client (`OpenAiChat` implements it)."""

    def stream(self, request: ChatRequest) -> AsyncGenerator[TextDelta | StreamDone, None]: ...


@dataclass
class RetellLlmOptions:
    """Server-wide settings of the built-in LLM, shared by every call."""

    chat: ChatProvider | None
    """The configured endpoint, or None when none is configured."""
    http: httpx.AsyncClient
    signing_key: str
    allow_private_tool_urls: bool = False
    model_map: Mapping[str, str] = field(default_factory=dict)
    default_model: str | None = None
    retry_delay_s: float = 0.3
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000)

    def provider_model(self, retell_model: str) -> str:
        """Retell's model name → the operator's: the map, else the default, else unchanged."""
        return self.model_map.get(retell_model) or self.default_model or retell_model


@dataclass(frozen=True)
class _Step:
    text: str
    tool_calls: tuple[ToolCallRequest, ...]


class _TurnFailed(Exception):
    """The provider failed this turn; `spoke` says whether any of it was already spoken."""

    def __init__(self, error: ProviderError, spoke: bool) -> None:
        super().__init__(str(error))
        self.error, self.spoke = error, spoke


@dataclass
class _ToolResult:
    content: str
    successful: bool
    speak_after: bool
    ends: Literal["agent_hangup", "call_transfer"] | None = None
    transfer_number: str | None = None


class RetellLlmEngine:
    """`ResponseEngine` for one call on a Retell LLM (`llm`: the LLM's wire fields, call overrides applied)."""

    def __init__(
        self,
        llm: Mapping[str, Any],
        call_id: str,
        options: RetellLlmOptions,
        *,
        dynamic_variables: Mapping[str, Any] | None = None,
        starting_state: str | None = None,
    ) -> None:
        self.llm = llm
        self.call_id = call_id
        self.options = options
        self._base_values = resolve_variables(llm.get("default_dynamic_variables"), dynamic_variables, None)
        self._overrides: dict[str, str] = {}
        self.collected: dict[str, str] = {}
        self.state: str | None = starting_state if find_state(llm, starting_state) else llm.get("starting_state")
        self.previous_state: str | None = None
        self._system = SystemVariables(call_id=call_id, now_ms=options.now_ms)
        self._events: asyncio.Queue[LlmEvent] = asyncio.Queue()
        self._reply: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._spoken: dict[int, str] = {}
        self._results: dict[str, str] = {}
        self._failures = 0
        self._ended = False
        self._user_spoke = False
        self._call: dict[str, Any] = {}
        self._transcript: list[Utterance] = []
        self._history: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        """What happened, for the call's public log: requests, tool calls, errors (with `at`, epoch ms)."""

    # -- ResponseEngine -----------------------------------------------------------------------------
    async def start(self, call: dict[str, Any]) -> None:
        self._call = call
        self._system.started_at_ms = self.options.now_ms()
        self._system.current_agent_state = self.state
        if self.options.chat is None:
            self._finish("error_retell", "no LLM endpoint is configured (VOXLINE_LLM_BASE_URL)")
            return
        self._spawn(self._begin())

    async def events(self) -> AsyncIterator[LlmEvent]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, LlmEnded):
                return

    async def update(
        self,
        transcript: list[Utterance],
        turntaking: Literal["agent_turn", "user_turn"] | None,
        *,
        transcript_with_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        if turntaking == "user_turn" or any(u.get("role") == "user" for u in transcript):
            self._user_spoke = True

    async def request_response(
        self,
        response_id: int,
        transcript: list[Utterance],
        *,
        reminder: bool = False,
        transcript_with_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        self._user_spoke = True
        history = transcript_with_tool_calls if transcript_with_tool_calls is not None else transcript
        self._transcript, self._history = transcript, history
        self._start_reply(response_id, list(history), reminder)

    async def close(self) -> None:
        tasks = [t for t in (self._reply, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    # -- live changes ---------------------------------------------------------------------------------
    def override_dynamic_variables(self, values: Mapping[str, Any] | None) -> None:
        """update-live-call: merge into the overrides (`None` clears them)."""
        if values is None:
            self._overrides = {}
        else:
            self._overrides.update({k: to_variable_value(v) for k, v in values.items() if v is not None})

    @property
    def values(self) -> dict[str, str]:
        return {**self._base_values, **self.collected, **self._overrides}

    def collected_dynamic_variables(self) -> dict[str, str]:
        """For the call object at the end: what the call collected, and the state it ended in."""
        result = dict(self.collected)
        if self.state is not None:
            result["current_agent_state"] = self.state
        return result

    # -- replies --------------------------------------------------------------------------------------
    def _start_reply(self, response_id: int, history: list[dict[str, Any]], reminder: bool) -> None:
        if self._reply is not None:
            self._reply.cancel()
        if self._ended:
            return
        self._reply = asyncio.create_task(self._respond(response_id, history, reminder))

    async def _begin(self) -> None:
        """Response 0: the begin message, generated, or nothing, per start_speaker."""
        begin = self.llm.get("begin_message")
        if (self.llm.get("start_speaker") or "agent") == "user":
            wait_ms = self.llm.get("begin_after_user_silence_ms")
            if wait_ms is None or begin == "":
                self._emit(ResponseChunk(0, "", True))
                return
            await asyncio.sleep(wait_ms / 1000)
            if self._user_spoke:
                return  # the user opened; response 0 was superseded
        if begin == "":
            self._emit(ResponseChunk(0, "", True))
        elif begin is not None:
            text = self._render(begin)
            self._spoken[0] = text
            self._emit(ResponseChunk(0, text, True))
        elif self._reply is None:
            self._start_reply(0, [], False)

    async def _respond(self, response_id: int, history: list[dict[str, Any]], reminder: bool) -> None:
        messages = self._messages(history, reminder)
        try:
            for _ in range(MAX_TOOL_ROUNDS):
                tools = self._tools()
                step = await self._complete(response_id, messages, tools)
                if not step.tool_calls:
                    break
                messages.append(_assistant_message(step))
                speak_after, ending = False, None
                for call in step.tool_calls:
                    result = await self._run_tool(response_id, call, tools.get(call.name), spoke=bool(step.text))
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result.content})
                    speak_after = speak_after or result.speak_after
                    if result.ends:
                        ending = result
                        break
                if ending is not None:
                    self._emit(
                        ResponseChunk(
                            response_id,
                            "",
                            True,
                            end_call=ending.ends == "agent_hangup",
                            transfer_number=ending.transfer_number if ending.ends == "call_transfer" else None,
                        )
                    )
                    return
                if not speak_after:
                    break
                messages[0] = self._messages(history, reminder)[0]  # a transition changes the prompt
            self._emit(ResponseChunk(response_id, "", True))
        except asyncio.CancelledError:
            raise
        except _TurnFailed as failed:
            self._note("error", response_id=response_id, error=str(failed.error), error_kind=failed.error.kind)
            log.warning("call %s: LLM provider failed (response %s): %s", self.call_id, response_id, failed.error)
            if self._failures >= FAILURES_TO_END:
                self._finish("error_retell", f"LLM provider failed {self._failures} times in a row: {failed.error}")
            else:
                self._emit(ResponseChunk(response_id, "", True))
        except Exception as exc:
            log.exception("call %s: reply %s failed", self.call_id, response_id)
            self._finish("error_retell", f"internal error while replying: {type(exc).__name__}: {exc}")

    def _messages(self, history: list[dict[str, Any]], reminder: bool) -> list[dict[str, Any]]:
        parts = PromptParts(self._system_prompt(), spoken=self._spoken, results=self._results, reminder=reminder)
        return build_messages(history, parts)

    def _system_prompt(self) -> str:
        state = find_state(self.llm, self.state)
        pieces = [self.llm.get("general_prompt") or "", (state or {}).get("state_prompt") or ""]
        return "\n\n".join(self._render(p) for p in pieces if p)

    def _tools(self) -> dict[str, VisibleTool]:
        return visible_tools(self.llm, self.state, self._render_deep)

    def _chat_request(self, messages: list[dict[str, Any]], tools: Mapping[str, VisibleTool]) -> ChatRequest:
        llm = self.llm
        config = llm.get("model_config") or {}
        primary = config.get("primary") or {}
        model = primary.get("model") or llm.get("model") or DEFAULT_MODEL
        temperature = config.get("temperature")
        if temperature is None:
            temperature = llm.get("model_temperature")
        return ChatRequest(
            model=self.options.provider_model(model),
            messages=messages,
            tools=[t.function for t in tools.values()] or None,
            temperature=temperature if temperature is not None else 0.0,
        )

    async def _complete(
        self, response_id: int, messages: list[dict[str, Any]], tools: Mapping[str, VisibleTool]
    ) -> _Step:
        """One completion, its text streamed out as it comes; one retry if nothing was produced."""
        request = self._chat_request(messages, tools)
        while True:
            text: list[str] = []
            self._note("llm_request", response_id=response_id, model=request.model, messages=len(messages))
            try:
                assert self.options.chat is not None  # start() ended the call otherwise
                async with contextlib.aclosing(self.options.chat.stream(request)) as stream:
                    async for event in stream:
                        if isinstance(event, TextDelta):
                            text.append(event.text)
                            self._say(response_id, event.text)
                        elif isinstance(event, StreamDone):
                            self._failures = 0
                            self._note("llm_done", response_id=response_id, finish_reason=event.finish_reason)
                            return _Step("".join(text), event.tool_calls)
                raise ProviderError("stream_ended", "the provider's stream ended without a final event")
            except ProviderError as error:
                self._failures += 1
                if text or not error.retryable or self._failures >= FAILURES_TO_END:
                    raise _TurnFailed(error, spoke=bool(text)) from error
                self._note("retry", response_id=response_id, error=str(error))
                await asyncio.sleep(self.options.retry_delay_s)

    # -- tools ----------------------------------------------------------------------------------------
    async def _run_tool(
        self, response_id: int, call: ToolCallRequest, tool: VisibleTool | None, *, spoke: bool
    ) -> _ToolResult:
        kind = tool.kind if tool is not None else None
        self._emit(ToolCallInvocation(call.id, call.name, call.arguments, type=_wire_type(kind)))
        self._note("tool_call", response_id=response_id, name=call.name, arguments=call.arguments)
        args = _parse_arguments(call.arguments)
        if tool is None:
            result = _ToolResult(f"There is no tool named {call.name}.", False, True)
        elif args is None:
            result = _ToolResult(f"The arguments are not a JSON object: {call.arguments[:200]}", False, True)
        else:
            try:
                result = await self._execute(response_id, call, tool, args, spoke)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in a tool's handling must not leave the turn hanging
                log.exception("call %s: tool %s failed", self.call_id, call.name)
                result = _ToolResult(f"The tool failed: {type(exc).__name__}", False, True)
        self._record_result(call.id, result.content, result.successful)
        return result

    async def _execute(
        self, response_id: int, call: ToolCallRequest, tool: VisibleTool, args: dict[str, Any], spoke: bool
    ) -> _ToolResult:
        spec = tool.spec
        if tool.kind == "transition":
            return self._transition(tool.target_state or "", args)
        if tool.kind == "extract_dynamic_variable":
            values = {k: to_variable_value(v) for k, v in args.items() if v is not None}
            self.collected.update(values)
            return _ToolResult(f"Recorded: {json.dumps(values, ensure_ascii=False)}", True, True)
        if tool.kind == "press_digit":
            digit = str(args.get("digit", ""))[:1]
            return _ToolResult(f"Pressed {digit}." if digit else "No digit given.", bool(digit), False)
        if tool.kind == "end_call":
            await self._execution_message(response_id, spec, call.name, spoke)
            return _ToolResult("The call is ending.", True, False, ends="agent_hangup")
        if tool.kind == "transfer_call":
            await self._execution_message(response_id, spec, call.name, spoke)
            number = _transfer_number(spec, args)
            return _ToolResult(
                f"Transfer to {number or 'the requested destination'} requested. This is a web call: it ends here.",
                True,
                False,
                ends="call_transfer",
                transfer_number=number or "",
            )
        if tool.kind == "custom":
            return await self._custom(response_id, call, spec, args, spoke)
        return _ToolResult(f"Tools of type {tool.kind} are not supported on this server.", False, True)

    def _transition(self, target: str, args: dict[str, Any]) -> _ToolResult:
        if find_state(self.llm, target) is None:
            return _ToolResult(f"There is no state named {target}.", False, True)
        self.collected.update({k: to_variable_value(v) for k, v in args.items() if v is not None})
        self.previous_state, self.state = self.state, target
        self._system.previous_agent_state, self._system.current_agent_state = self.previous_state, target
        self._note("state", former=self.previous_state, new=target)
        return _ToolResult(f"Moved from state {self.previous_state} to state {target}.", True, True)

    async def _custom(
        self, response_id: int, call: ToolCallRequest, spec: Mapping[str, Any], args: dict[str, Any], spoke: bool
    ) -> _ToolResult:
        args = {**args, **const_arguments(spec.get("parameters"))}
        request = asyncio.create_task(
            run_custom_tool(
                spec,
                args,
                self._call_snapshot(),
                client=self.options.http,
                signing_key=self.options.signing_key,
                allow_private=self.options.allow_private_tool_urls,
            )
        )
        self._tasks.add(request)
        request.add_done_callback(self._tasks.discard)
        request.add_done_callback(lambda t: self._late_result(call.id, t))
        await self._execution_message(response_id, spec, call.name, spoke)
        outcome = await asyncio.shield(request)
        self.collected.update(outcome.variables)
        self._note("tool_result", name=call.name, successful=outcome.successful, detail=outcome.detail)
        speak_after = spec.get("speak_after_execution")
        return _ToolResult(outcome.content, outcome.successful, True if speak_after is None else bool(speak_after))

    def _late_result(self, tool_call_id: str, task: "asyncio.Task[Any]") -> None:
        """A custom tool that finished after its reply was superseded: record its result anyway."""
        if tool_call_id in self._results or task.cancelled() or task.exception() is not None:
            return
        outcome = task.result()
        self.collected.update(outcome.variables)
        self._record_result(tool_call_id, outcome.content, outcome.successful)

    def _record_result(self, tool_call_id: str, content: str, successful: bool) -> None:
        if tool_call_id in self._results:
            return
        self._results[tool_call_id] = content
        self._emit(ToolCallResult(tool_call_id, content, successful))

    async def _execution_message(self, response_id: int, spec: Mapping[str, Any], name: str, spoke: bool) -> None:
        """speak_during_execution: a static line, or one the model writes from the description.
        Skipped when the model already said something with this tool call."""
        if not spec.get("speak_during_execution") or spoke:
            return
        description = spec.get("execution_message_description") or DEFAULT_EXECUTION_MESSAGE
        if spec.get("execution_message_type") == "static_text":
            self._say(response_id, self._render(description) + " ")
            return
        instruction = EXECUTION_LINE_INSTRUCTION.format(name=name, description=description)
        messages = [{"role": "system", "content": self._system_prompt()}, {"role": "user", "content": instruction}]
        with contextlib.suppress(_TurnFailed):
            step = await self._complete(response_id, messages, {})
            if step.text:
                self._say(response_id, " ")

    # -- plumbing -------------------------------------------------------------------------------------
    def _say(self, response_id: int, text: str) -> None:
        if not text:
            return
        self._spoken[response_id] = self._spoken.get(response_id, "") + text
        self._emit(ResponseChunk(response_id, text, False))

    def _render(self, text: str) -> str:
        return render(text, self.values, self._system)

    def _render_deep(self, obj: Any) -> Any:
        return render_deep(obj, self.values, self._system)

    def _call_snapshot(self) -> dict[str, Any]:
        """The call object for a custom tool's request: as at the start, with the transcript so far."""
        transcript = self._transcript
        return {
            **self._call,
            "transcript": transcript_text(transcript),
            "transcript_object": transcript,
            "transcript_with_tool_calls": self._history,
        }

    def _emit(self, event: LlmEvent) -> None:
        if not self._ended:
            self._events.put_nowait(event)

    def _finish(self, reason: str, detail: str) -> None:
        if self._ended:
            return
        self._note("end", reason=reason, detail=detail)
        log.warning("call %s: the built-in LLM ends the call (%s): %s", self.call_id, reason, detail)
        self._events.put_nowait(LlmEnded(reason, detail))  # type: ignore[arg-type]
        self._ended = True

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _note(self, kind: str, **fields: Any) -> None:
        self.log.append({"at": self.options.now_ms(), "kind": kind, **fields})


def _assistant_message(step: _Step) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": step.text or None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in step.tool_calls
        ],
    }


def _parse_arguments(raw: str) -> dict[str, Any] | None:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _wire_type(kind: str | None) -> str | None:
    """`tool_call_invocation.type`: the Retell tool type (transitions have none of their own)."""
    if kind is None or kind == "transition":
        return None
    return kind


def _transfer_number(spec: Mapping[str, Any], args: Mapping[str, Any]) -> str:
    destination = spec.get("transfer_destination") or {}
    if destination.get("type") == "predefined":
        return str(destination.get("number") or "")
    return str(args.get("number") or args.get("transfer_number") or "")
